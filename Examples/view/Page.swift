/// The page: it joins view:state and applies each patch it receives to the DOM. Rendering a
/// patch is made deliberately slow (a few milliseconds of busy work), as a heavy view is;
/// with "latest value wins" on the server, such a page skips patches instead of falling
/// further and further behind. data-applied counts the patches applied, data-backwards
/// is set if a patch ever came older than the one before (it must not).
let page = #"""
    <!doctype html>
    <meta charset="utf-8">
    <title>Live view runtime</title>
    <style>body { font: 16px system-ui; margin: 2rem } #count { font-size: 4rem }</style>
    <p id="status" data-joined="0">connecting</p>
    <div id="count" data-count="0" data-applied="0">0</div>
    <p id="label"></p>
    <script type="module">
      const status = document.querySelector("#status");
      const count = document.querySelector("#count");
      const label = document.querySelector("#label");
      const ws = new WebSocket(`ws://${location.host}/ws`, "live.v1.json");
      ws.onopen = () => ws.send(JSON.stringify({ type: "join", topic: "view:state", ref: "join" }));
      ws.onmessage = (event) => {
        const m = JSON.parse(event.data);
        if (m.type === "reply" && m.ref === "join") {
          status.textContent = "joined";
          status.dataset.joined = "1";
        }
        if (m.type !== "message") return;
        const patch = m.body;
        const started = performance.now();
        while (performance.now() - started < 3) {} // a heavy render
        if (patch.count < Number(count.dataset.count)) count.dataset.backwards = "1";
        count.dataset.count = String(patch.count);
        count.dataset.applied = String(Number(count.dataset.applied) + 1);
        count.textContent = String(patch.count);
        label.textContent = patch.label;
      };
      ws.onclose = () => { status.textContent = "closed"; };
    </script>
    """#
