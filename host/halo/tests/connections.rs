//! The socket layer through a real `halo serve`: `TCP_NODELAY` on accepted sockets, prompt
//! closes, 1009 for oversize messages, the connection cap and running out of file descriptors.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::{TestServer, read_close, read_json, request, wait_until};
use serde_json::{Value, json};
use tungstenite::Message;

fn server_pid(server: &TestServer) -> i32 {
    let local: Value =
        serde_json::from_str(&std::fs::read_to_string(server.data_dir().join("local.json")).expect("local.json"))
            .expect("json");
    local["pid"].as_i64().expect("pid") as i32
}

fn server_port(server: &TestServer) -> u16 {
    server.url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("port")
}

/// The server's own socket for the connection whose client end is `client` (found in
/// `/proc/<pid>/net/tcp` by its ports, then among the server's descriptors by inode), duplicated
/// into this process with `pidfd_getfd` (Linux 5.6; the test is the server's parent).
fn server_side_socket(server: &TestServer, client: &TcpStream) -> std::os::fd::OwnedFd {
    let pid = server_pid(server);
    let (port, peer) = (server_port(server), client.local_addr().expect("addr").port());
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).expect("net/tcp");
    let hex_port = |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    let inode = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 9 && hex_port(f[1]) == Some(port) && hex_port(f[2]) == Some(peer))
        .map(|f| f[9].to_owned())
        .expect("the server's end of the connection");
    let wanted = format!("socket:[{inode}]");
    let fd = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(Result::ok)
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == wanted))
        .and_then(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .expect("the server holds the socket");
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).expect("pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd_open");
    rustix::process::pidfd_getfd(pidfd.as_fd(), fd, rustix::process::PidfdGetfdFlags::empty()).expect("pidfd_getfd")
}

fn nodelay(server: &TestServer, client: &TcpStream) -> bool {
    let fd = server_side_socket(server, client);
    rustix::net::sockopt::tcp_nodelay(&fd).expect("getsockopt TCP_NODELAY")
}

fn http_get(stream: &mut TcpStream, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

#[test]
fn accepted_sockets_have_nagle_off() {
    let server = TestServer::start();
    let token = server.login("admin", common::ADMIN_PASSWORD);

    // An HTTP connection: answered once, so it is accepted; the server's end has TCP_NODELAY.
    let mut http = TcpStream::connect(server.url.trim_start_matches("http://")).expect("connect");
    write!(http, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut buf = [0u8; 512];
    let n = http.read(&mut buf).expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(nodelay(&server, &http), "HTTP connection without TCP_NODELAY");

    // A WebSocket: the same socket after the upgrade, still without Nagle.
    let (mut ws, _) = server.ws(&token, "nagle");
    let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_ref() else { panic!("plain") };
    assert!(nodelay(&server, tcp), "WebSocket without TCP_NODELAY");
    assert_eq!(request(&mut ws, json!({"type": "ping", "id": 1}))["id"], 1);
}

#[test]
fn a_client_close_is_answered_at_once() {
    let server = TestServer::start();
    let token = server.login("admin", common::ADMIN_PASSWORD);
    // Ten closes in a row: each took 2.1 s before (the server waited for a writer that had
    // nothing to do); now the server answers the close frame and ends the connection at once.
    // The bound is wide (ten times the old figure would be 21 s).
    let start = Instant::now();
    for i in 0..10 {
        let (mut ws, _) = server.ws(&token, &format!("c{i}"));
        ws.close(None).expect("close");
        loop {
            match ws.read() {
                Ok(Message::Close(c)) => assert_eq!(c.map(|c| u16::from(c.code)), Some(1000), "the code echoed"),
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("close handshake: {e}"),
            }
        }
    }
    assert!(start.elapsed() < Duration::from_secs(10), "ten closes took {:?}", start.elapsed());
}

#[test]
fn an_oversize_message_is_answered_1009_after_it_is_read() {
    let server = TestServer::start();
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let (mut bystander, _) = server.ws(&token, "bystander");
    // The server reads the rest of the message before it closes, so the client, still
    // writing, gets the 1009 and not a reset; every time.
    for i in 0..5 {
        let (mut ws, _) = server.ws(&token, &format!("huge{i}"));
        ws.send(Message::Text("x".repeat(2 << 20).into())).expect("the whole message is taken");
        assert_eq!(read_close(&mut ws), (1009, "message_too_big".into()));
    }
    // A fragmented message past the limit too.
    let (mut ws, _) = server.ws(&token, "fragments");
    let part = "y".repeat(600 << 10);
    let frame = |op, fin| tungstenite::protocol::frame::Frame::message(part.clone().into_bytes(), op, fin);
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    ws.send(Message::Frame(frame(OpCode::Data(Data::Text), false))).expect("first");
    ws.send(Message::Frame(frame(OpCode::Data(Data::Continue), true))).expect("last");
    assert_eq!(read_close(&mut ws).0, 1009);
    assert_eq!(request(&mut bystander, json!({"type": "ping", "id": 2}))["id"], 2);
}

#[test]
fn connections_past_the_cap_get_503_until_one_closes() {
    let server = TestServer::with_config("[http]\nmax_connections = 2\n");
    let token = server.login("admin", common::ADMIN_PASSWORD);
    // The login's connection may still be open for a moment: retry until each socket opens.
    let open = |name: &str| {
        wait_until("a WebSocket under the cap", 20, || {
            server.try_ws(&format!("?endpoint={name}"), Some(&token), None).ok()
        })
    };
    let mut a = open("a");
    let _b = open("b");
    assert_eq!(server.try_ws("?endpoint=c", Some(&token), None).err(), Some(503), "refused before the upgrade");

    let mut tcp = TcpStream::connect(server.url.trim_start_matches("http://")).expect("connect");
    let answer = http_get(&mut tcp, "/healthz");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or_default()).expect("JSON body");
    assert_eq!(body["error"], "busy", "{answer}");

    read_json(&mut a);
    a.close(None).expect("close");
    while a.read().is_ok() {}
    let mut c = open("c");
    assert_eq!(request(&mut c, json!({"type": "ping", "id": 3}))["id"], 3);
    let metrics = server.raw("GET", "/metrics", Some(&token), "text/plain", Vec::new());
    // The metrics request itself may be refused while the cap is full; wait for a slot.
    let metrics = if metrics.0 == 200 {
        metrics.1
    } else {
        drop(c);
        wait_until("metrics", 20, || {
            let (status, text) = server.raw("GET", "/metrics", Some(&token), "text/plain", Vec::new());
            (status == 200).then_some(text)
        })
    };
    assert!(metrics.contains("halo_connections_max 2"), "{metrics}");
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("halo_connections_refused_total{reason=\"max_connections\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .expect("refusals counted");
    assert!(refused >= 2, "{metrics}");
}

#[test]
fn the_server_survives_running_out_of_file_descriptors() {
    let server = TestServer::with_config("[http]\nmax_connections = 100000\n");
    let pid = server_pid(&server);
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let (mut ws, _) = server.ws(&token, "survivor");
    // A few descriptors above what the server holds now: a flood of connections exhausts them
    // (accept fails with EMFILE) while the cap is far away.
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fds").count() as u64;
    let target = rustix::process::Pid::from_raw(pid);
    let low = rustix::process::Rlimit { current: Some(open + 8), maximum: None };
    let before = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let low = rustix::process::Rlimit { maximum: before.maximum, ..low };
    rustix::process::prlimit(target, rustix::process::Resource::Nofile, low).expect("prlimit");

    let addr = server.url.trim_start_matches("http://").to_owned();
    let flood: Vec<TcpStream> = (0..60).filter_map(|_| TcpStream::connect(&addr).ok()).collect();
    assert!(!flood.is_empty());
    // The established socket lives on meanwhile.
    assert_eq!(request(&mut ws, json!({"type": "ping", "id": 4}))["id"], 4);
    wait_until("the server's descriptors run out", 20, || {
        let n = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
        (n >= open + 7).then_some(())
    });
    drop(flood);
    // The flood is over: the server accepts (and closes) what was left in its backlog, then
    // serves new connections as before, without a restart.
    wait_until("the server answers again", 60, || {
        let mut tcp = TcpStream::connect(&addr).ok()?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        http_get(&mut tcp, "/healthz").starts_with("HTTP/1.1 200").then_some(())
    });
    assert_eq!(request(&mut ws, json!({"type": "ping", "id": 5}))["id"], 5);
    assert!(server.try_ws("?endpoint=after", Some(&token), None).is_ok());
}
