// The user's own profile (display name, e-mail, title, department, phone: PATCH /api/v1/me)
// and password (PUT /api/v1/me/password), in one dialog; loaded when opened.

import { get, patch, put } from "./api.js";
import { store } from "./state.js";
import { field, formDialog, h, toast } from "./util.js";

/** Opens the dialog. */
export async function profileDialog() {
  const me = await get("/api/v1/me");
  const text = (name, label, value, type = "text") => field(label, h("input", { name, type, value: value || "", maxlength: 200, dir: "auto" }));
  await formDialog("Your profile", () => [
    text("display_name", "Display name", me.display_name),
    text("email", "E-mail", me.email, "email"),
    text("title", "Title", me.title),
    text("department", "Department", me.department),
    text("phone", "Phone", me.phone, "tel"),
    h("h3", {}, "Change password"),
    field("Current password", h("input", { name: "current_password", type: "password", autocomplete: "current-password" })),
    field("New password (8 characters or more)", h("input", { name: "new_password", type: "password", autocomplete: "new-password", minlength: 8 })),
  ], async (form) => {
    const body = {};
    for (const k of ["display_name", "email", "title", "department", "phone"]) if (form[k].value !== (me[k] || "")) body[k] = form[k].value;
    if (Object.keys(body).length) Object.assign(store.me, await patch("/api/v1/me", body));
    if (form.new_password.value) {
      await put("/api/v1/me/password", { current_password: form.current_password.value, new_password: form.new_password.value });
      toast("Password changed; your other sessions were signed out");
    } else if (Object.keys(body).length) toast("Profile saved");
  });
}
