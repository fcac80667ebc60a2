// The nemotron-voice page: SmallWebRTC offer/answer with the bot at /api/offer, audio both ways,
// and RTVI messages (transcripts, replies, per-turn latency) over the data channel. No build step
// and no network beyond this host.
"use strict";

const RTVI_LABEL = "rtvi-ai";
const RTVI_VERSION = "2.2.0";
const PING_INTERVAL_MS = 1000; // the bot treats a data channel silent for 3 s as gone

const $ = (id) => document.getElementById(id);
const state = {
  pc: null,
  channel: null,
  mic: null,
  pingTimer: null,
  meterTimer: null,
  botText: null,
  events: [], // RTVI message types in arrival order
  servicesDown: new Set(), // model services the bot is reconnecting to (bots/service_status.py)
};
// Read by the browser tests.
window.nemotron = state;

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

function addEntry(role, text) {
  const li = document.createElement("li");
  li.dataset.role = role;
  li.textContent = text;
  $("transcript").appendChild(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

function fillSelect(select, values, selected, label = (v) => v) {
  select.replaceChildren(
    ...values.map((v) => {
      const option = new Option(label(v), v);
      option.selected = String(v) === String(selected);
      return option;
    }),
  );
}

async function loadOptions() {
  try {
    const options = await (await fetch("/api/options")).json();
    // The ASR service's own modes; none listed (it is unreachable): its default, whatever it is.
    if (options.latency_modes.length) {
      fillSelect($("latency"), options.latency_modes, options.latency_ms, (ms) => `${ms} ms`);
    } else {
      fillSelect($("latency"), [""], "", () => "service default");
    }
    fillSelect($("voice"), options.voices, options.voice);
  } catch (err) {
    addEntry("error", `Could not load the bot's options: ${err}`);
  }
}

function sendRtvi(type, data) {
  if (state.channel?.readyState !== "open") return;
  state.channel.send(JSON.stringify({ label: RTVI_LABEL, type, id: crypto.randomUUID(), data }));
}

function onRtviMessage(msg) {
  const data = msg.data || {};
  state.events.push(msg.type);
  switch (msg.type) {
    case "bot-ready":
      showConnected();
      break;
    case "user-transcription":
      if (data.final) {
        $("interim").textContent = "";
        addEntry("user", data.text);
        state.botText = null;
      } else {
        $("interim").textContent = data.text;
      }
      break;
    case "bot-output":
      showBotOutput(data);
      break;
    case "llm-function-call-in-progress":
      showToolCall(data);
      break;
    case "llm-function-call-stopped":
      showToolResult(data);
      break;
    case "bot-interrupted":
      // What the user cut off was never heard: struck through, as the LLM context drops it too.
      for (const part of state.botText?.querySelectorAll(".pending") ?? []) {
        part.classList.replace("pending", "unspoken");
        part.title = "not spoken: interrupted";
      }
      state.botText = null;
      break;
    case "bot-stopped-speaking":
      state.botText = null;
      break;
    case "server-message":
      if (data.kind === "turn-latency") addLatencyRow(data);
      else if (data.kind === "service-status") showServiceStatus(data);
      break;
    case "error":
      addEntry("error", data.message || JSON.stringify(data));
      break;
  }
}

// A model service restarting: what the user says meanwhile is held and answered once it is back.
function showServiceStatus(data) {
  if (data.state === "reconnecting") state.servicesDown.add(data.service);
  else state.servicesDown.delete(data.service);
  if (data.service === "tts" && data.state === "connected") {
    // The TTS is back, fresh: what it had not finished before it went away was never heard.
    for (const part of document.querySelectorAll("#transcript .pending")) {
      part.className = "unspoken lost";
      part.title = "not spoken: the TTS service went away";
    }
  }
  showConnected();
}

function showConnected() {
  const down = [...state.servicesDown].map((name) => name.toUpperCase());
  if (down.length) setStatus(`reconnecting to the ${down.join(" and ")} service…`, "reconnecting");
  else setStatus("connected — speak any time", "connected");
}

// A segment of the reply is reported when new, then again once spoken ("completed"): it shows as
// pending until then.
function showBotOutput(data) {
  if (data.spoken_status && data.spoken_status !== "new") {
    const part = document.querySelector(`#transcript span[data-segment="${data.segment_id}"]`);
    // A part marked lost whose audio was already on its way was heard after all.
    if (data.spoken_status === "completed" && part?.classList.contains("lost")) {
      part.className = "";
      part.removeAttribute("title");
    } else if (data.spoken_status === "completed") part?.classList.remove("pending");
    return;
  }
  state.botText ??= addEntry("bot", "");
  const part = document.createElement("span");
  part.textContent = `${state.botText.childElementCount ? " " : ""}${data.text}`;
  if (data.will_be_spoken) {
    part.className = "pending";
    part.dataset.segment = data.segment_id;
  }
  state.botText.append(part);
}

// A tool the LLM called, with its arguments, then its result (bots/tools.py).
function showToolCall(data) {
  const args = Object.entries(data.arguments ?? {}).map(([k, v]) => `${k}: ${v}`);
  const li = addEntry("tool", `${data.function_name ?? "a tool"}(${args.join(", ")})`);
  li.dataset.toolCallId = data.tool_call_id;
}

function showToolResult(data) {
  const li = document.querySelector(`#transcript li[data-tool-call-id="${data.tool_call_id}"]`);
  if (!li) return;
  const result = data.result?.result ?? data.result?.error ?? JSON.stringify(data.result);
  li.textContent += data.cancelled ? " — cancelled" : ` → ${result}`;
}

// One row per turn: the total, a bar of its stages (bots/latency.py) and their times. Times are
// from the end of the user's speech to the bot's first audio leaving the transport.
function addLatencyRow(turn) {
  const row = document.createElement("tr");
  row.innerHTML = "<td></td><td class='total'></td><td></td>";
  row.cells[0].textContent = turn.turn;
  if (turn.talked_over_user) {
    row.cells[1].textContent = "—";
    row.cells[2].textContent = "the bot started speaking while you were still speaking";
    row.classList.add("flagged");
  } else if (turn.unanswered) {
    row.cells[1].textContent = "—";
    row.cells[2].textContent = `no reply: ${turn.unanswered}`;
    row.classList.add("flagged");
  } else {
    const stages = turn.stages.filter((s) => s.ms !== null);
    row.cells[1].textContent = `${Math.round(turn.total_ms)} ms`;
    row.cells[2].append(stageBar(stages, turn.total_ms), stageList(stages));
    if (turn.late_turn) {
      const note = document.createElement("div");
      note.className = "late";
      note.textContent = `late: ${turn.late_turn}`;
      row.cells[2].append(note);
      row.classList.add("flagged");
    }
  }
  $("latency-rows").prepend(row);
}

function stageBar(stages, total) {
  const bar = document.createElement("div");
  bar.className = "timeline";
  for (const s of stages) {
    const part = document.createElement("span");
    part.dataset.key = s.key;
    part.style.width = `${(100 * s.ms) / Math.max(total, 1)}%`;
    part.title = `${s.label}: ${Math.round(s.ms)} ms (${s.owner})`;
    bar.append(part);
  }
  return bar;
}

function stageList(stages) {
  const list = document.createElement("div");
  list.textContent = stages.map((s) => `${s.label} ${Math.round(s.ms)}`).join(" · ") + " ms";
  return list;
}

function startMicMeter(stream) {
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  state.meterTimer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
    $("mic-level").value = Math.min(1, rms * 4);
  }, 100);
  state.audioContext = ctx;
}

function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
}

async function connect() {
  setStatus("connecting…", "connecting");
  $("connect").disabled = true;
  try {
    state.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    startMicMeter(state.mic);

    const pc = new RTCPeerConnection({ iceServers: [] });
    state.pc = pc;
    // The bot expects the audio transceiver first, then video, both sendrecv.
    pc.addTransceiver(state.mic.getAudioTracks()[0], { direction: "sendrecv" });
    pc.addTransceiver("video", { direction: "sendrecv" });
    pc.ontrack = (event) => {
      if (event.track.kind === "audio") $("bot-audio").srcObject = new MediaStream([event.track]);
    };
    pc.onconnectionstatechange = () => {
      if (["failed", "closed", "disconnected"].includes(pc.connectionState)) disconnect();
    };

    const channel = pc.createDataChannel("chat", { ordered: true });
    state.channel = channel;
    channel.onopen = () => {
      sendRtvi("client-ready", {
        version: RTVI_VERSION,
        about: { library: "nemotron-voice-page", library_version: "0.1.0" },
      });
      state.pingTimer = setInterval(() => channel.send(`ping: ${Date.now()}`), PING_INTERVAL_MS);
    };
    channel.onmessage = (event) => {
      try {
        const msg = JSON.parse(event.data);
        if (msg.label === RTVI_LABEL) onRtviMessage(msg);
      } catch {
        /* not an RTVI message */
      }
    };

    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const response = await fetch("/api/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        sdp: pc.localDescription.sdp,
        type: pc.localDescription.type,
        request_data: {
          asr_latency_ms: Number($("latency").value) || undefined,
          tts_voice: $("voice").value || undefined,
        },
      }),
    });
    if (!response.ok) throw new Error(`the bot answered ${response.status}`);
    await pc.setRemoteDescription(await response.json());
    $("connect").textContent = "Disconnect";
    $("connect").classList.add("active");
    $("latency").disabled = $("voice").disabled = true;
  } catch (err) {
    addEntry("error", `Could not connect: ${err.message || err}`);
    disconnect("error");
  } finally {
    $("connect").disabled = false;
  }
}

function disconnect(kind = "idle") {
  clearInterval(state.pingTimer);
  state.servicesDown.clear();
  clearInterval(state.meterTimer);
  state.channel?.close();
  state.pc?.close();
  state.mic?.getTracks().forEach((t) => t.stop());
  state.audioContext?.close();
  Object.assign(state, { pc: null, channel: null, mic: null, botText: null, audioContext: null });
  $("mic-level").value = 0;
  $("interim").textContent = "";
  $("connect").textContent = "Connect";
  $("connect").classList.remove("active");
  $("latency").disabled = $("voice").disabled = false;
  if (kind === "error") setStatus("connection failed", "error");
  else setStatus("not connected", "idle");
}

$("connect").addEventListener("click", () => (state.pc ? disconnect() : connect()));
loadOptions();
