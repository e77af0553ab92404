// The try-it page: every clip goes to /invocations as audio_base64, the one scoring path.
"use strict";

const $ = (id) => document.getElementById(id);
let recorder = null;
let recordings = 0;

function say(text) { $("status").textContent = text; }

async function showCard() {
  try {
    const card = await (await fetch("/card")).json();
    const box = $("card");
    box.textContent = "";
    card.lines.forEach((line, i) => {
      const element = document.createElement(i === 0 ? "h3" : "p");
      element.textContent = line.replace(/^#+\s*/, "");
      box.appendChild(element);
    });
    if (card.synthetic) {
      $("warning").textContent = "This model was trained on the SYNTHETIC demo corpora, not on speech: " +
        "its answers on real recordings mean nothing.";
      $("warning").hidden = false;
    }
  } catch (error) {
    $("card").textContent = "The model card could not be read: " + error;
  }
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function reason(message) {
  // MLflow wraps the model's reason: "Failed to predict data '...'. Error: row 0 (...): too short ..."
  const found = /Error: (?:row \d+ \([^)]*\): )?([\s\S]*)$/.exec(message || "");
  return (found ? found[1] : message || "refused").trim();
}

function answer(name, body, ok) {
  const item = document.createElement("li");
  const title = document.createElement("div");
  title.className = "name";
  title.textContent = name;
  item.appendChild(title);
  if (!ok) {
    const refused = document.createElement("div");
    refused.className = "refused";
    refused.textContent = "Refused: " + reason(body.message);
    item.appendChild(refused);
  } else {
    const row = body.predictions[0];
    const verdict = document.createElement("div");
    verdict.innerHTML = "Valence: <strong></strong>";
    verdict.querySelector("strong").textContent = row.valence;
    verdict.className = "valence valence-" + row.valence;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", `p(negative) ${row.p_negative.toFixed(2)}, p(positive) ${row.p_positive.toFixed(2)}`);
    for (const [cls, p] of [["neg", row.p_negative], ["pos", row.p_positive]]) {
      const part = document.createElement("span");
      part.className = cls;
      part.style.width = (100 * p).toFixed(1) + "%";
      bar.appendChild(part);
    }
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `p(negative) ${row.p_negative.toFixed(3)} · p(positive) ${row.p_positive.toFixed(3)} · ` +
      `model version ${row.model_version}`;
    item.append(verdict, bar, meta);
  }
  $("answers").prepend(item);
}

async function score(name, bytes) {
  say("Scoring " + name + "…");
  try {
    const response = await fetch("/invocations", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ dataframe_records: [{ audio_base64: base64(bytes) }] }),
    });
    const body = await response.json().catch(() => ({ message: response.statusText }));
    answer(name, body, response.ok);
    say("");
  } catch (error) {
    answer(name, { message: String(error) }, false);
    say("");
  }
}

async function uploaded(event) {
  for (const file of event.target.files) {
    await score(file.name, new Uint8Array(await file.arrayBuffer()));
  }
  event.target.value = "";
}

function wav(buffer) {
  // 16-bit PCM, mono (the first channel), at the recording's own rate: a format the server reads.
  const samples = buffer.getChannelData(0);
  const view = new DataView(new ArrayBuffer(44 + 2 * samples.length));
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * samples.length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, buffer.sampleRate, true); view.setUint32(28, 2 * buffer.sampleRate, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * samples.length, true);
  samples.forEach((s, i) => view.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, s)) * 0x7fff, true));
  return new Uint8Array(view.buffer);
}

async function toggleRecording() {
  const button = $("record");
  if (recorder) {
    recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    say("No microphone: " + error.message);
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    recorder = null;
    button.textContent = "Record";
    button.setAttribute("aria-pressed", "false");
    const encoded = await new Blob(chunks).arrayBuffer();
    const decoded = await new AudioContext().decodeAudioData(encoded);
    await score("recording " + ++recordings, wav(decoded));
  };
  recorder.start();
  button.textContent = "Stop and score";
  button.setAttribute("aria-pressed", "true");
  say("Recording… press again to stop.");
}

document.addEventListener("DOMContentLoaded", () => {
  $("files").addEventListener("change", uploaded);
  $("record").addEventListener("click", toggleRecording);
  showCard();
});
