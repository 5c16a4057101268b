// Uploads a file to attach to a message (POST /api/v1/attachments, the bytes as the body);
// loaded when the user first attaches something.

import { api, qs } from "./api.js";

/** Uploads `file`; resolves with {id, name, mime, size, sha256}. */
export function uploadAttachment(file) {
  return api("POST", `/api/v1/attachments${qs({ name: file.name })}`, file, "application/octet-stream");
}
