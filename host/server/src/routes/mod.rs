//! The HTTP routes, grouped by area, collected with their OpenAPI descriptions.

pub mod apps;
pub mod archive;
pub mod contacts;
pub mod conversations;
pub mod federation;
pub mod me;
pub mod messages;
pub mod plugins;
pub mod pool;
pub mod presence;
pub mod rooms;
pub mod search;
pub mod session;
pub mod settings;
pub mod system;
pub mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use crate::stream;

#[derive(OpenApi)]
#[openapi(
    info(title = "Halo", description = "Halo IM and presence server: REST API. The WebSocket frames of /api/v1/stream are in docs/protocol.md."),
    modifiers(&BearerAuth),
    tags(
        (name = "session", description = "Login and logout"),
        (name = "me", description = "The caller's own account"),
        (name = "users", description = "Account administration (admin role)"),
        (name = "presence", description = "Presence: states, notes, pictures, other users' presence, integrations"),
        (name = "plugins", description = "Plugin administration (admin role)"),
        (name = "contacts", description = "Contact list, groups, access levels, blocking, directory"),
        (name = "conversations", description = "IM conversations, history and search"),
        (name = "rooms", description = "Persistent chat rooms"),
        (name = "federation", description = "Federation with other servers: domain rules, links, queues (admin)"),
        (name = "archive", description = "Compliance archiving: policy (admin), search and export (compliance role)"),
        (name = "stream", description = "The WebSocket event stream"),
        (name = "system", description = "Health and metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Every route, and the OpenAPI document generated from the same lists (served at
/// `/api/v1/openapi.json`), so the document cannot miss a route. Component uploads get their
/// own body limit (`max_upload`); everything else `max_body`.
pub fn router(max_body: usize, max_upload: usize, max_attachment: usize) -> Router<AppState> {
    let (files, files_api) = OpenApiRouter::new().routes(routes!(messages::upload)).split_for_parts();
    let files = files.layer(DefaultBodyLimit::max(max_attachment)).layer(RequestBodyLimitLayer::new(max_attachment));
    let (uploads, uploads_api) = OpenApiRouter::new()
        .routes(routes!(plugins::inspect))
        .routes(routes!(plugins::list, plugins::install))
        .routes(routes!(plugins::get, plugins::upgrade, plugins::remove))
        .split_for_parts();
    let uploads = uploads.layer(DefaultBodyLimit::max(max_upload)).layer(RequestBodyLimitLayer::new(max_upload));
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(plugins::enable))
        .routes(routes!(plugins::disable))
        .routes(routes!(plugins::configure))
        .routes(routes!(plugins::limits))
        .routes(routes!(plugins::grants))
        .routes(routes!(plugins::logs))
        .routes(routes!(system::healthz))
        .routes(routes!(system::metrics))
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(me::get_me, me::update_me))
        .routes(routes!(me::change_password))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::get_user, users::update_user, users::delete_user))
        .routes(routes!(users::disable_user))
        .routes(routes!(users::enable_user))
        .routes(routes!(users::reset_password))
        .routes(routes!(users::unlock_user))
        .routes(routes!(users::unlock_address))
        .routes(routes!(contacts::blocked))
        .routes(routes!(contacts::block, contacts::unblock))
        .routes(routes!(contacts::list, contacts::add))
        .routes(routes!(contacts::edit, contacts::remove))
        .routes(routes!(contacts::add_group))
        .routes(routes!(contacts::edit_group, contacts::remove_group))
        .routes(routes!(contacts::directory))
        .routes(routes!(apps::list, apps::create))
        .routes(routes!(apps::revoke))
        .routes(routes!(presence::states))
        .routes(routes!(presence::get_mine, presence::patch_mine))
        .routes(routes!(presence::set_state, presence::reset_state))
        .routes(routes!(presence::put_picture, presence::delete_picture))
        .routes(routes!(presence::get_picture))
        .routes(routes!(presence::get_one))
        .routes(routes!(presence::batch))
        .routes(routes!(presence::badge))
        .routes(routes!(presence::calendar))
        .routes(routes!(presence::phone))
        .routes(routes!(settings::get, settings::update))
        .routes(routes!(conversations::list, conversations::start))
        .routes(routes!(conversations::get, conversations::hide))
        .routes(routes!(conversations::messages, conversations::send))
        .routes(routes!(conversations::add))
        .routes(routes!(conversations::leave))
        .routes(routes!(conversations::read))
        .routes(routes!(messages::edit_in_conversation, messages::delete_in_conversation))
        .routes(routes!(messages::react_in_conversation, messages::unreact_in_conversation))
        .routes(routes!(messages::mute_conversation))
        .routes(routes!(messages::edit_in_room, messages::delete_in_room))
        .routes(routes!(messages::react_in_room, messages::unreact_in_room))
        .routes(routes!(messages::mute_room))
        .routes(routes!(messages::download))
        .routes(routes!(messages::compliance_download))
        .routes(routes!(search::search))
        .routes(routes!(rooms::list, rooms::create))
        .routes(routes!(rooms::get, rooms::update))
        .routes(routes!(rooms::join))
        .routes(routes!(rooms::leave))
        .routes(routes!(rooms::set_member, rooms::remove_member))
        .routes(routes!(rooms::messages, rooms::post))
        .routes(routes!(rooms::read))
        .routes(routes!(rooms::follow))
        .routes(routes!(archive::get_policy, archive::set_global))
        .routes(routes!(archive::set_user, archive::clear_user))
        .routes(routes!(archive::get_settings, archive::set_settings))
        .routes(routes!(archive::purge))
        .routes(routes!(archive::status))
        .routes(routes!(archive::search))
        .routes(routes!(archive::export))
        .routes(routes!(federation::overview))
        .routes(routes!(federation::put_domain, federation::remove_domain))
        .routes(routes!(pool::status))
        .routes(routes!(stream::stream))
        .split_for_parts();
    let router = router.layer(RequestBodyLimitLayer::new(max_body)).merge(uploads).merge(files);
    api.merge(uploads_api);
    api.merge(files_api);
    let json = api.to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    router.route("/api/v1/openapi.json", get(move || async move { ([("content-type", "application/json")], json) }))
}
