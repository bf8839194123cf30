// Plays the asset with shaka-player: DASH first, HLS if DASH fails to load. With several
// audio tracks (languages, commentary, audio description) a menu offers the choice.
// Playback QoE goes to the server as beacons (and CMCD) through /static/mediaplane-qoe.js.
(async function () {
  const id = window.mediaplane.playbackId;
  const query = window.mediaplane.query || "";  // "?token=…" for a signed playback id
  const video = document.getElementById("video");
  const errorBox = document.getElementById("player-error");
  const show = (msg) => { errorBox.hidden = false; errorBox.textContent = msg; };
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) { show("This browser cannot play adaptive video."); return; }
  const player = new shaka.Player();
  await player.attach(video);
  window.mediaplane.player = player;
  if (window.MediaplaneQoE) {
    const viewerId = window.mediaplane.viewerId || undefined;  // signed in: the account's
    window.mediaplane.qoe = MediaplaneQoE.view({ playbackId: id, viewerId }).attach(video, player);
  }
  player.addEventListener("error", (e) => show("Playback error " + e.detail.code));
  const choice = document.getElementById("audio-choice");
  const menu = document.getElementById("audio-track");
  let tracks = [];
  const name = (t) => t.label || (t.language !== "und" ? t.language : "") || "Audio";
  const listAudio = () => {
    tracks = player.getAudioTracks();
    menu.replaceChildren(...tracks.map((t, i) => {
      const option = new Option(name(t), String(i), false, t.active);
      option.dataset.language = t.language;
      return option;
    }));
    choice.hidden = tracks.length < 2;
  };
  menu.addEventListener("change", () => {
    const track = tracks[Number(menu.value)];
    if (track) player.selectAudioTrack(track);
  });
  player.addEventListener("trackschanged", listAudio);
  player.addEventListener("variantchanged", listAudio);
  for (const url of [`/play/${id}/manifest.mpd${query}`, `/play/${id}/master.m3u8${query}`]) {
    // Start at 0 also on a growing (EVENT) playlist, which players otherwise join live.
    try { await player.load(url, 0); window.mediaplane.loaded = url; listAudio(); return; }
    catch (e) { console.warn("could not load", url, e); }
  }
  show("This video could not be loaded.");
})();
