"""The list page's hot loop builds each row's <td>s in Python (app.web.records.listing.table_row):
every text and URL that reaches the HTML is escaped there, references show their label, and the
column formatters pick badges, dates and links."""

from __future__ import annotations

import datetime as dt
import types
import uuid

import pytest
from jinja2 import Environment
from markupsafe import Markup

from app.core.i18n import Catalogs
from app.manifest import FieldSpec
from app.web import i18n
from app.web.i18n import localize
from app.web.records.listing import (
    EDIT,
    EMPTY,
    RESTORE,
    SELECT_ROW,
    VIEW,
    Cell,
    Column,
    file_cell,
    rows_html,
    table_row,
)

PAGE = "/t/acme/p/inventory/inventory/items"
ROW_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
HOSTILE = '<script>alert("x")</script>'


def test_text_is_escaped_and_the_first_cell_links_to_the_record():
    html = table_row({"id": ROW_ID}, [Cell(HOSTILE), Cell(HOSTILE)], PAGE, deleted=False).html
    assert "<script>" not in html
    assert html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") == 2
    assert html.startswith(f'<td><a href="{PAGE}/{ROW_ID}">&lt;script&gt;')
    assert html.endswith("<td>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</td>")


def test_badges_links_and_muted_cells_escape_their_attributes():
    cells = [Cell("name"), Cell("Active", badge='green" onclick="x'), Cell("ref", href='/a?"><b>'), EMPTY]
    html = table_row({"id": ROW_ID}, cells, PAGE, deleted=False).html
    assert 'class="badge c-green&#34; onclick=&#34;x"' in html
    assert '<a href="/a?&#34;&gt;&lt;b&gt;">ref</a>' in html
    assert '<td><span class="muted">—</span></td>' in html


def test_file_cells_link_the_first_file_and_show_an_images_thumbnail():
    doc = {"id": "a1", "name": HOSTILE, "thumbnail": None}
    photo = {"id": "b2", "name": "p.png", "thumbnail": "f00"}
    assert file_cell(None) is EMPTY and file_cell([]) is EMPTY and file_cell("not a list") is EMPTY
    assert file_cell([doc, photo]) == Cell(f"{HOSTILE}, p.png", file="files/a1")
    assert file_cell([photo]) == Cell("p.png", file="files/b2", thumb="files/b2/thumbnail")
    cells = [Cell("name"), file_cell([doc]), file_cell([photo])]
    html = table_row({"id": ROW_ID}, cells, PAGE, deleted=False).html
    record = f"{PAGE}/{ROW_ID}"
    assert f'<td><a href="{record}/files/a1">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</a></td>' in html
    assert (
        f'<a href="{record}/files/b2"><img class="thumb" src="{record}/files/b2/thumbnail" alt="p.png"'
        in html
    )
    spec = FieldSpec("photo", "image", "Photo")
    assert Column("photo", "Photo", None, spec, False).formatter()([photo]).thumb == "files/b2/thumbnail"


def test_the_deleted_view_does_not_link_the_first_cell():
    html = table_row({"id": ROW_ID}, [Cell("gone")], PAGE, deleted=True).html
    assert html == "<td>gone</td>"


def test_a_reference_shows_its_label_and_links_when_visible():
    cat = uuid.uuid4()
    column = Column(
        "category_id",
        "Category",
        None,
        FieldSpec("category_id", "reference", "Category", entity="inventory_category"),
        False,
    )
    linked = column.formatter({cat: "<Tools>"}, "/t/acme/p/inventory/inventory/categories")(cat)
    assert linked == Cell("<Tools>", href=f"/t/acme/p/inventory/inventory/categories/{cat}")
    html = table_row({"id": ROW_ID}, [Cell("x"), linked], PAGE, deleted=False).html
    assert f'<a href="/t/acme/p/inventory/inventory/categories/{cat}">&lt;Tools&gt;</a>' in html
    assert column.formatter({}, None)(cat) == Cell(str(cat))  # unknown label, no permission: the id, no link


def test_formatters_for_status_dates_and_links():
    status = Column(
        "status",
        "Status",
        "status",
        FieldSpec("status", "string", "Status"),
        True,
        {"active": ("Active", "green"), "odd": ("Odd", "chartreuse")},
    )
    assert status.formatter()("active") == Cell("Active", badge="green")
    assert status.formatter()("odd") == Cell("Odd", badge="default")  # colours outside the palette
    assert status.formatter()("other") == Cell("other", badge="default")
    when = Column("created_at", "Created", "date", None, True)
    assert (
        when.formatter()(dt.datetime(2026, 3, 4, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))).text
        == "2026-03-05"
    )
    link = Column("site", "Site", "link", FieldSpec("site", "string", "Site"), True)
    assert link.formatter()("https://example.test/a") == Cell(
        "https://example.test/a", href="https://example.test/a"
    )
    assert link.formatter()("javascript:alert(1)") == Cell("javascript:alert(1)")  # no href for other schemes


def test_numbers_are_right_aligned_by_column_type_or_field_type():
    qty = Column("quantity", "Quantity", None, FieldSpec("quantity", "integer", "Quantity"), True)
    price = Column("price", "Price", "currency", FieldSpec("price", "decimal", "Price"), True)
    code = Column("code", "Code", None, FieldSpec("code", "string", "Code"), True)
    assert [c.numeric for c in (qty, price, code)] == [True, True, False]
    html = table_row(
        {"id": ROW_ID}, [Cell("A-1"), Cell("3"), Cell("9.50")], PAGE, False, [False, True, True]
    ).html
    assert html.endswith('<td class="num">3</td>\n      <td class="num">9.50</td>')
    assert html.startswith("<td><a ")


# What records/_rows.html's row loop rendered before the rows came from rows_html: the same bytes.
ROW_LOOP = """{% for r in rows %}
    <tr>
      {% if bulk %}<td class="sel"><input type="checkbox" name="ids" value="{{ r.row.id }}" form="bulk" aria-label="{{ _("Select %(record)s", record=r.cells[0].text) }}"></td>{% endif %}
      {{ r.html }}
      <td class="row-actions">
        {% if query.deleted %}
          <form method="post" action="{{ r.url }}/restore" class="inline" hx-boost="true">
            {{ csrf_input | safe }}<button class="secondary" type="submit">{{ _("Restore") }}</button></form>
        {% else %}
          <a href="{{ r.url }}">{{ _("View") }}</a>
          {% if allowed.edit %}<a href="{{ r.url }}/edit">{{ _("Edit") }}</a>{% endif %}
        {% endif %}
      </td>
    </tr>
  {% endfor %}"""


@pytest.mark.parametrize(
    ("bulk", "deleted", "can_edit"), [(True, False, True), (False, False, False), (False, True, True)]
)
@pytest.mark.parametrize("language", ["en", "zh"])
def test_rows_html_is_what_the_template_loop_rendered(bulk, deleted, can_edit, language):
    env = Environment(autoescape=True)
    i18n.install(env)
    ctx = types.SimpleNamespace(language=language, translations=Catalogs.load().get(language))
    page = f'{PAGE}?a="b"&c'  # a URL with characters to escape
    rows = [
        table_row({"id": uuid.UUID(int=i)}, [Cell(HOSTILE if i else "plain"), Cell(str(i))], page, deleted)
        for i in range(3)
    ]
    csrf = Markup('<input type="hidden" name="_csrf_token" value="t">')
    texts = {text: localize(ctx, text) for text in (SELECT_ROW, VIEW, EDIT, RESTORE)}
    expected = env.from_string(ROW_LOOP).render(
        ctx=ctx,
        rows=rows,
        bulk=bulk,
        query=types.SimpleNamespace(deleted=deleted),
        allowed={"edit": can_edit},
        csrf_input=csrf,
    )
    got = rows_html(rows, texts, bulk=bulk, deleted=deleted, can_edit=can_edit, csrf_input=str(csrf))
    assert got == expected
    assert "<script>" not in got
