;; The smallest Portal plugin: a component written by hand in the WebAssembly text format. It imports
;; nothing (no host calls, no WASI) and exports the `guest` interface of wit/plugin.wit; its one custom
;; page is a fixed UI document and its one action answers with a toast.
;; Build: `portal plugin build FOLDER` (wasmtime's text parser) writes FOLDER/plugin.wasm.
(component
  (core module $m
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 4096))
    ;; The canonical ABI's allocator for the arguments the host copies in: a bump allocator (every
    ;; call runs on a fresh instance or a small heap, and a page holds what one call gets).
    (func (export "realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $at i32)
      (local.set $at (i32.and (i32.add (global.get $next) (i32.sub (local.get $align) (i32.const 1)))
                              (i32.xor (i32.sub (local.get $align) (i32.const 1)) (i32.const -1))))
      (global.set $next (i32.add (local.get $at) (local.get $size)))
      (if (i32.gt_u (global.get $next) (i32.mul (memory.size) (i32.const 65536)))
        (then (drop (memory.grow (i32.const 1)))))
      (local.get $at))
    ;; Results: `ok` (discriminant 0) with no payload, read from the zeroed words at 0.
    (func $ok (result i32) (i32.const 0))
    (func (export "init") (result i32) (call $ok))
    (func (export "on-tenant-created") (param i32 i32) (result i32) (call $ok))
    (func (export "handle-event") (param i32 i32 i32 i32) (result i32) (call $ok))
    ;; `ok(string)`: discriminant at 16, the string's address and length at 20 and 24.
    (func $ok_text (param $text i32) (param $len i32) (result i32)
      (i32.store8 (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (local.get $text))
      (i32.store (i32.const 24) (local.get $len))
      (i32.const 16))
    (data (i32.const 1024) "{\22version\22:1,\22title\22:\22Hello WAT\22,\22blocks\22:[{\22type\22:\22text\22,\22text\22:\22This page comes from a hand-written component.\22},{\22type\22:\22button\22,\22label\22:\22Wave\22,\22action\22:\22wave\22}]}")
    (data (i32.const 2048) "{\22toast\22:{\22level\22:\22success\22,\22text\22:\22Hello back\22}}")
    (func (export "render-page") (param i32 i32 i32 i32) (result i32)
      (call $ok_text (i32.const 1024) (i32.const 165)))
    (func (export "handle-action") (param i32 i32 i32 i32 i32 i32) (result i32)
      (call $ok_text (i32.const 2048) (i32.const 49)))
  )
  (core instance $i (instantiate $m))
  (func $init (result (result (error string)))
    (canon lift (core func $i "init") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func $on-tenant-created (param "tenant-id" string) (result (result (error string)))
    (canon lift (core func $i "on-tenant-created") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func $handle-event (param "event-type" string) (param "payload" string) (result (result (error string)))
    (canon lift (core func $i "handle-event") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func $render-page (param "page-path" string) (param "params" string) (result (result string (error string)))
    (canon lift (core func $i "render-page") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func $handle-action (param "page-path" string) (param "action" string) (param "data" string)
    (result (result string (error string)))
    (canon lift (core func $i "handle-action") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (instance $guest
    (export "init" (func $init))
    (export "on-tenant-created" (func $on-tenant-created))
    (export "handle-event" (func $handle-event))
    (export "render-page" (func $render-page))
    (export "handle-action" (func $handle-action)))
  (export "portal:plugin/guest@0.1.0" (instance $guest))
)
