// Load SyncDreamer Checkpoint: while the official checkpoint is missing from
// models/syncdreamer, the node carries a "Download checkpoint" button. The server fetches the
// file (nodes/checkpoint_download.py), the button shows how far it got, and when the file is
// there and checked the node selects it.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const LOADER = "SyncDreamerCheckpointLoader";
const BUTTON = "syncdreamer_download";

async function call(method) {
  const path = method === "POST" ? "/syncdreamer/checkpoint/download" : "/syncdreamer/checkpoint";
  const response = await api.fetchApi(path, { method });
  return response.json();
}

function label(status) {
  const gb = (bytes) => (bytes / 1e9).toFixed(2);
  if (status.state === "downloading") {
    const share = status.total ? Math.floor((100 * status.done) / status.total) : 0;
    return `Downloading checkpoint: ${share}% of ${gb(status.total)} GB`;
  }
  if (status.state === "failed") return "Download failed: retry (it resumes)";
  return `Download checkpoint (${gb(status.total)} GB)`;
}

async function refreshModelList() {
  try {
    if (app.refreshComboInNodes) await app.refreshComboInNodes();
  } catch (error) {
    console.warn("SyncDreamer: could not refresh the model lists", error);
  }
}

function removeButton(node) {
  const index = (node.widgets || []).findIndex((w) => w.name === BUTTON);
  if (index >= 0) node.widgets.splice(index, 1);
  node.setDirtyCanvas?.(true, true);
}

async function follow(node, button) {
  for (;;) {
    const status = await call("GET");
    button.label = label(status);
    node.setDirtyCanvas?.(true, true);
    if (status.state === "downloading") {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    if (status.present) {
      await refreshModelList();
      const choice = node.widgets?.find((w) => w.name === "ckpt_name");
      if (choice) choice.value = status.file;
      removeButton(node);
    } else if (status.state === "failed") {
      console.warn("SyncDreamer:", status.message);
      button.label = label(status);
    }
    return;
  }
}

const extension = {
  name: "SyncDreamer.CheckpointDownload",
  async nodeCreated(node) {
    if (node.comfyClass !== LOADER) return;
    let status;
    try {
      status = await call("GET");
    } catch {
      return; // an older pack on the server: no button
    }
    if (status.present || (node.widgets || []).some((w) => w.name === BUTTON)) return;
    const button = node.addWidget("button", BUTTON, null, async () => {
      button.label = label({ ...status, state: "downloading", done: 0 });
      await call("POST");
      await follow(node, button);
    }, { serialize: false });
    button.serialize = false; // not a node input: kept out of saved workflows and prompts
    button.label = label(status);
    if (status.state === "downloading") follow(node, button);
  },
};

try {
  app.registerExtension(extension);
} catch (error) {
  // ComfyUI 0.27 can serve a pack's web folder under two names (folder and package): once is enough
  if (!String(error).includes("already registered")) throw error;
}
