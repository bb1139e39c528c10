"""The web kit: request context, rendering, errors, menus, and the HTML/JSON route handlers of each area."""
