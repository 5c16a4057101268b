//! The pool's status for admins (`GET /api/v1/admin/pool`; `halo pool status`).

use axum::extract::State;
use halo_services::pool::status::{ConsumerLag, LogLag, StreamHealth};

use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// One node of the pool.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PoolNode {
    /// Its name.
    pub node: String,
    /// Its client address.
    pub http: String,
    /// When it started, ms since the Unix epoch.
    pub started_at: u64,
    /// Users with a socket there.
    pub users: usize,
    /// Sockets there.
    pub endpoints: usize,
    /// Presence groups it runs.
    pub groups: Vec<usize>,
    /// Once-per-pool tasks it runs.
    pub tasks: Vec<String>,
    /// The NATS server it is connected to.
    pub nats_server: String,
    /// How far its copy of the IM log and its followers are behind (from its last heartbeat).
    pub log: LogLag,
}

/// The pool as this node sees it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PoolStatus {
    /// Whether this node is a pool member (`false`: standalone, the rest is empty).
    pub pooled: bool,
    /// This node's name.
    pub node: Option<String>,
    /// The pool's name.
    pub pool: Option<String>,
    /// The live nodes, this one first.
    pub nodes: Vec<PoolNode>,
    /// Each presence group's node (`null`: moving).
    pub groups: Vec<Option<String>>,
    /// JetStream as the connected server reports it: `ok`, or why not.
    pub jetstream: String,
    /// JetStream storage used by the pool's account, bytes.
    pub jetstream_bytes: u64,
    /// Streams in the account.
    pub jetstream_streams: usize,
    /// Replicas of the pool's streams and buckets.
    pub replicas: usize,
    /// The IM stream's last sequence number now (what each node's `log.applied` is compared
    /// with).
    pub im_last: u64,
    /// The consumers the pool runs once (the archive sinks) and how far behind they are.
    pub consumers: Vec<ConsumerLag>,
    /// The pool's streams and buckets as JetStream reports them: replicas, leader, and each
    /// replica's lag behind its leader.
    pub streams: Vec<StreamHealth>,
    /// Why `streams` is empty, when JetStream did not list them.
    pub streams_error: Option<String>,
}

/// The pool: its nodes with their users, sockets, presence groups, tasks and IM log lag, who
/// runs each presence group, the once-per-pool consumers' lag, and JetStream's health (each
/// stream's and bucket's replicas, leader and replica lag).
#[utoipa::path(get, path = "/api/v1/admin/pool", tag = "admin",
    responses((status = 200, body = PoolStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn status(State(state): State<AppState>, _admin: AdminUser) -> Result<axum::Json<PoolStatus>, ApiError> {
    let Some(pool) = state.pool.as_ref() else {
        return Ok(axum::Json(PoolStatus {
            pooled: false,
            node: None,
            pool: None,
            nodes: Vec::new(),
            groups: Vec::new(),
            jetstream: "not a pool member".into(),
            jetstream_bytes: 0,
            jetstream_streams: 0,
            replicas: 0,
            im_last: 0,
            consumers: Vec::new(),
            streams: Vec::new(),
            streams_error: None,
        }));
    };
    let nodes = pool
        .members()
        .nodes()
        .into_iter()
        .map(|n| PoolNode {
            node: n.node,
            http: n.http,
            started_at: n.started_at,
            users: n.users,
            endpoints: n.endpoints,
            groups: n.groups,
            tasks: n.tasks,
            nats_server: n.nats_server,
            log: n.log,
        })
        .collect();
    let groups = match state.presence.groups() {
        Some(g) => g.owners().await,
        None => Vec::new(),
    };
    let (jetstream, bytes, streams) = match pool.cluster().jetstream().query_account().await {
        Ok(a) => ("ok".to_owned(), a.storage, a.streams),
        Err(e) => (e.to_string(), 0, 0),
    };
    let (health, streams_error) = match halo_services::pool::status::streams(pool).await {
        Ok(list) => (list, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let im = pool.cluster().stream_name("IM");
    let im_last = health.iter().find(|s| s.name == im).map_or(0, |s| s.last_seq);
    let consumers = state.pool_consumers(pool).await;
    Ok(axum::Json(PoolStatus {
        pooled: true,
        node: Some(pool.node().to_owned()),
        pool: Some(pool.cluster().pool().to_owned()),
        nodes,
        groups,
        jetstream,
        jetstream_bytes: bytes,
        jetstream_streams: streams,
        replicas: pool.cluster().replicas(),
        im_last,
        consumers,
        streams: health,
        streams_error,
    }))
}
