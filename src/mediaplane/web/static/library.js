// The signed-in viewer's library on the watch page (through the API, with the session's
// CSRF token): saves the position every ~10 s while playing, on pause and when the page
// is left; offers "Resume from m:ss"; toggles the favourite; adds to a playlist.
(function () {
  const box = document.getElementById("library");
  const video = document.getElementById("video");
  if (!box || !video) return;
  const asset = encodeURIComponent(box.dataset.asset);
  const headers = { "Content-Type": "application/json", "X-CSRF-Token": box.dataset.csrf };
  const status = document.getElementById("library-status");
  const api = (method, path, body, keepalive) =>
    fetch("/api/v1" + path, {
      method, headers, credentials: "same-origin", keepalive: !!keepalive,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const clock = (s) => {
    s = Math.floor(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  };

  // --- saving the position ---------------------------------------------------------------
  // While "Resume from" is offered and not taken, the first seconds are not saved: opening
  // the page and leaving it at once must not lose the place where one was.
  let played = false, lastSaved = -1, offered = 0;
  const save = (keepalive) => {
    const position = video.currentTime;
    if (!played || !Number.isFinite(position) || Math.abs(position - lastSaved) < 0.5) return;
    if (offered && position < Math.min(offered, 10)) return;
    lastSaved = position;
    const body = { position_seconds: position };
    if (Number.isFinite(video.duration) && video.duration > 0) body.duration = video.duration;
    api("PUT", `/me/history/${asset}`, body, keepalive).catch(() => { lastSaved = -1; });
  };
  video.addEventListener("playing", () => { played = true; });
  video.addEventListener("pause", () => save(false));
  video.addEventListener("ended", () => save(false));
  setInterval(() => { if (!video.paused) save(false); }, 10000);
  window.addEventListener("pagehide", () => save(true));
  document.addEventListener("visibilitychange", () => { if (document.hidden) save(true); });
  window.mediaplane = Object.assign(window.mediaplane || {}, { saveProgress: save });

  // --- resume, favourite, playlists --------------------------------------------------------
  const resume = document.getElementById("resume");
  const favourite = document.getElementById("favourite");
  const showFavourite = (on) => {
    favourite.hidden = false;
    favourite.setAttribute("aria-pressed", String(on));
    favourite.textContent = on ? "★ Favourite" : "☆ Favourite";
  };
  api("GET", `/me/library/${asset}`).then((r) => r.ok ? r.json() : null).then((body) => {
    if (!body) return;
    const state = body.data;
    showFavourite(state.favourite);
    const at = state.progress ? state.progress.resume_position_seconds : 0;
    if (at >= 1) {
      offered = at;
      resume.hidden = false;
      resume.dataset.position = String(at);
      resume.textContent = `Resume from ${clock(at)}`;
    }
  });
  resume.addEventListener("click", () => {
    const at = Number(resume.dataset.position);
    const go = () => { video.currentTime = at; video.play().catch(() => {}); };
    if (video.readyState >= 1) go(); else video.addEventListener("loadedmetadata", go, { once: true });
    resume.hidden = true;
    offered = 0;
  });
  favourite.addEventListener("click", async () => {
    const on = favourite.getAttribute("aria-pressed") !== "true";
    const r = await api(on ? "PUT" : "DELETE", `/me/favourites/${asset}`);
    if (r.ok) showFavourite(on); else status.textContent = "Could not change the favourite.";
  });
  const choice = document.getElementById("playlist-choice");
  const menu = document.getElementById("playlist");
  api("GET", "/playlists").then((r) => r.ok ? r.json() : null).then((body) => {
    if (!body || !body.data.length) return;
    menu.replaceChildren(...body.data.map((p) => new Option(p.name, p.id)));
    choice.hidden = false;
  });
  document.getElementById("add-to-playlist").addEventListener("click", async () => {
    const r = await api("POST", `/playlists/${encodeURIComponent(menu.value)}/items`,
      { asset_id: box.dataset.asset });
    status.textContent = r.ok ? "Added to " + menu.options[menu.selectedIndex].text + "." : "Could not add it.";
  });
})();
