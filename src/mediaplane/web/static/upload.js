// Resumable uploads with tus-js-client: progress, pause/resume, and resume after a reload
// (tus-js-client remembers upload URLs in localStorage, keyed by the file's fingerprint).
(function () {
  const $ = (id) => document.getElementById(id);
  // Signed in: the session cookie goes along by itself, its CSRF token in a header.
  // Otherwise: a pasted API token (remembered in localStorage).
  const session = $("signed-in");
  const token = $("token") || { value: "" };
  if (!session) token.value = localStorage.getItem("mediaplane.token") || "";
  const auth = () => session
    ? { "X-CSRF-Token": session.dataset.csrf }
    : { Authorization: "Bearer " + token.value };
  let upload = null;

  const fmt = (n) => (n / 1048576).toFixed(1) + " MB";
  const show = (msg) => { $("upload-error").hidden = false; $("upload-error").textContent = msg; };
  const state = (s) => { $("state").textContent = s; document.body.dataset.uploadState = s; };

  async function poll(uploadUrl) {
    // The upload resource says which asset it became; then follow the asset's processing.
    const headers = { ...auth(), Accept: "application/json" };
    for (let i = 0; i < 600; i++) {
      const r = await fetch(uploadUrl, { headers });
      if (r.ok) {
        const up = (await r.json()).data;
        if (up.asset_id) {
          const a = await fetch("/api/v1/assets/" + up.asset_id, { headers });
          const asset = (await a.json()).data;
          document.body.dataset.assetId = asset.id;
          const pid = asset.playback_ids[0].id;
          $("result").innerHTML = "";
          const link = document.createElement("a");
          link.href = "/watch/" + pid;
          link.textContent = asset.status === "ready" ? "Watch now" : "Processing: " + Math.round(asset.progress) + "%";
          $("result").appendChild(link);
          if (asset.status !== "preparing") { state(asset.status); return; }
        }
      }
      await new Promise((res) => setTimeout(res, 1000));
    }
  }

  // ?parallel=N (1 to 8) sends the file as N partial uploads at once, joined by one final
  // upload on the server (tus concatenation): faster where one connection is the limit.
  function parallelUploads() {
    const asked = Number(document.body.dataset.parallel ||
      new URLSearchParams(location.search).get("parallel") || 1);
    return Number.isInteger(asked) ? Math.min(Math.max(asked, 1), 8) : 1;
  }

  function start(file) {
    if (!session) localStorage.setItem("mediaplane.token", token.value);
    $("status").hidden = false;
    upload = new tus.Upload(file, {
      endpoint: "/api/v1/uploads",
      headers: auth(),
      parallelUploads: parallelUploads(),
      chunkSize: Number(document.body.dataset.chunkSize || 8 * 1048576),
      retryDelays: [0, 1000, 3000, 5000],
      removeFingerprintOnSuccess: true,
      metadata: {
        filename: file.name,
        title: $("title").value || file.name,
        source_type: $("source-type").value,
        // Signed in: the channel chosen on the page (none: the install's, admins only).
        ...($("channel") && $("channel").value ? { channel_id: $("channel").value } : {}),
      },
      onProgress(sent, total) {
        const pct = total ? (sent / total) * 100 : 0;
        $("bar").value = pct;
        $("percent").textContent = pct.toFixed(1) + "%";
        $("bytes").textContent = fmt(sent) + " of " + fmt(total);
        document.body.dataset.uploaded = String(sent);
      },
      onError(err) { state("error"); show("Upload failed: " + err.message); },
      onSuccess() { state("uploaded"); poll(upload.url); },
    });
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        document.body.dataset.resumed = "true";
      }
      upload.start();
      state("uploading");
      $("pause").disabled = false;
    });
  }

  $("start").addEventListener("click", () => {
    const file = $("file").files[0];
    if (!file || (!session && !token.value)) { show("Choose a file and enter your API token."); return; }
    start(file);
  });
  $("pause").addEventListener("click", () => {
    if (!upload) return;
    upload.abort();
    state("paused");
    $("pause").disabled = true;
    $("resume").disabled = false;
  });
  $("resume").addEventListener("click", () => {
    if (!upload) return;
    upload.start();
    state("uploading");
    $("pause").disabled = false;
    $("resume").disabled = true;
  });
})();
