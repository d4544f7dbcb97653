// Load SyncDreamer Checkpoint: while the official checkpoint is not in models/syncdreamer, the
// node carries a "Download checkpoint" button. The server fetches the file
// (nodes/checkpoint_download.py); while it runs the button shows how far it got and cancels it
// (the bytes are kept: the next press continues), and a failure is told on the button in a few
// words and in full in a notice and the button's tooltip. Once the file is there the button goes and the node selects it; once any checkpoint
// is there (put there another way, picked and used) a failure is no longer shown.
//
// Frontends before 1.41.5 refuse to download a .ckpt: their Missing Models dialog shows the
// checkpoint with "Only allowed suffixes are: '.safetensors', '.sft'" and no way forward, which
// reads as a wrong file. There the workflow's entry for it is dropped before the frontend checks
// it, and the node's button is the way in; later frontends keep the entry and offer Download.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const LOADER = "SyncDreamerCheckpointLoader";
const BUTTON = "syncdreamer_download";
const ROUTES = { status: ["GET", ""], start: ["POST", "/download"], cancel: ["POST", "/cancel"] };
const followed = new WeakSet();
const FIRST_FRONTEND_DOWNLOADING_CKPT = [1, 41, 5];

function frontendRefusesCkpt() {
  const version = String(window.__COMFYUI_FRONTEND_VERSION__ || "").split(".").map(Number);
  if (version.length < 3 || version.some(Number.isNaN)) return false; // unknown: leave the workflow as it is
  for (let k = 0; k < 3; k += 1) {
    if (version[k] !== FIRST_FRONTEND_DOWNLOADING_CKPT[k]) return version[k] < FIRST_FRONTEND_DOWNLOADING_CKPT[k];
  }
  return false;
}

const refusedEntry = (model) => model?.directory === "syncdreamer" && /\.ckpt$/i.test(model?.name || "");

// The workflow as the frontend will check it: without the entries this frontend can only refuse.
function dropRefusedModelEntries(graphData) {
  if (!graphData || !frontendRefusesCkpt()) return;
  const nodes = [...(graphData.nodes || []), ...(graphData.definitions?.subgraphs || []).flatMap((s) => s.nodes || [])];
  for (const node of nodes) {
    const models = node?.properties?.models;
    if (Array.isArray(models)) node.properties.models = models.filter((m) => !refusedEntry(m));
  }
  if (Array.isArray(graphData.models)) graphData.models = graphData.models.filter((m) => !refusedEntry(m));
}

async function call(what) {
  const [method, tail] = ROUTES[what];
  const response = await api.fetchApi(`/syncdreamer/checkpoint${tail}`, { method });
  return response.json();
}

const gb = (bytes) => (bytes / 1e9).toFixed(2);
const share = (status) => (status.total ? Math.floor((100 * status.done) / status.total) : 0);

function label(status) {
  if (status.state === "downloading") return `Cancel download (${share(status)}% of ${gb(status.total)} GB)`;
  if (status.state === "cancelling") return "Cancelling the download...";
  if (status.state === "failed") return `Retry (${status.summary})`;
  if (status.kept > 0) return `Continue download (${Math.floor((100 * status.kept) / status.total)}% kept)`;
  return `Download checkpoint (${gb(status.total)} GB)`;
}

function widget(node, name) {
  return (node.widgets || []).find((w) => w.name === name);
}

function removeButton(node) {
  const index = (node.widgets || []).findIndex((w) => w.name === BUTTON);
  if (index >= 0) node.widgets.splice(index, 1);
  node.setDirtyCanvas?.(true, true);
}

// The whole story of a failure (what happened to the bytes, what to do) in a notice that stays
// until closed; the button keeps the reason in a few words and the whole of it as its tooltip.
const told = new Set();
function tell(status) {
  if (!["failed", "cancelled"].includes(status.state) || !status.message || told.has(status.message)) return;
  told.add(status.message);
  const toast = app.extensionManager?.toast;
  const notice = { severity: status.state === "failed" ? "error" : "info",
    summary: status.state === "failed" ? "SyncDreamer: checkpoint download failed" : "SyncDreamer: download cancelled",
    detail: status.message };
  if (toast?.add) toast.add(status.state === "failed" ? notice : { ...notice, life: 8000 });
  else console.warn("SyncDreamer:", status.message);
}

function show(node, status) {
  const button = widget(node, BUTTON);
  if (!button) return;
  button.label = label(status);
  button.tooltip = status.message || "Downloads syncdreamer-pretrain.ckpt (5.57 GB) into models/syncdreamer, checked "
    + "to be the official file. Press again while it runs to cancel; the next press continues.";
  tell(status);
  node.setDirtyCanvas?.(true, true);
}

async function refreshModelList() {
  try {
    if (app.refreshComboInNodes) await app.refreshComboInNodes();
  } catch (error) {
    console.warn("SyncDreamer: could not refresh the model lists", error);
  }
}

async function settle(node, status) {
  if (!status.present) return show(node, status);
  await refreshModelList();
  const choice = widget(node, "ckpt_name");
  if (choice && status.state === "done") choice.value = status.file;
  removeButton(node);
}

// Poll while the server downloads; one loop per node.
async function follow(node) {
  if (followed.has(node)) return;
  followed.add(node);
  try {
    for (;;) {
      const status = await call("status");
      if (status.state === "downloading" || status.state === "cancelling") {
        show(node, status);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      await settle(node, status);
      return;
    }
  } finally {
    followed.delete(node);
  }
}

function loaders() {
  return (app.graph?._nodes || app.graph?.nodes || []).filter((n) => n.comfyClass === LOADER);
}

// A checkpoint may arrive another way (copied in, another tab): look again after each run.
async function recheck() {
  const nodes = loaders().filter((n) => widget(n, BUTTON));
  if (!nodes.length) return;
  const status = await call("status");
  for (const node of nodes) {
    if (status.state === "downloading" || status.state === "cancelling") follow(node);
    else await settle(node, status);
  }
}

const extension = {
  name: "SyncDreamer.CheckpointDownload",
  async beforeConfigureGraph(graphData) {
    dropRefusedModelEntries(graphData);
  },
  setup() {
    for (const event of ["execution_success", "execution_error"]) {
      api.addEventListener(event, () => recheck().catch(() => {}));
    }
  },
  async nodeCreated(node) {
    if (node.comfyClass !== LOADER) return;
    let status;
    try {
      status = await call("status");
    } catch {
      return; // an older pack on the server: no button
    }
    if (status.present || widget(node, BUTTON)) return;
    const button = node.addWidget("button", BUTTON, null, async () => {
      const now = await call("status");
      if (now.state === "downloading") {
        show(node, await call("cancel"));
        return;
      }
      if (now.state === "cancelling") return;
      show(node, await call("start"));
      await follow(node);
    }, { serialize: false });
    button.serialize = false; // not a node input: kept out of saved workflows and prompts
    show(node, status);
    if (status.state === "downloading" || status.state === "cancelling") follow(node);
  },
};

try {
  app.registerExtension(extension);
} catch (error) {
  // ComfyUI 0.27 can serve a pack's web folder under two names (folder and package): once is enough
  if (!String(error).includes("already registered")) throw error;
}
