//! A one-route HTTP server on loopback standing in for an archive's ingest endpoint (for the
//! `http-archive-sink` example): it keeps every body it is POSTed, in arrival order, so a test
//! sees each batch a sink delivered, repeats included.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// The endpoint.
pub struct Ingest {
    /// Its port on 127.0.0.1.
    pub port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
    /// Requests received (refused ones too).
    pub requests: Arc<AtomicUsize>,
}

impl Ingest {
    /// Listens on a free port; answers 503 to the first `fail_first` requests, 200 after.
    pub fn start(fail_first: usize) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (b, r) = (bodies.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                // A sender killed mid-request closes its socket; one that stalls is let go.
                let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let n = r.fetch_add(1, Ordering::SeqCst);
                let status = if n < fail_first { "503 Service Unavailable" } else { "200 OK" };
                if n >= fail_first {
                    b.lock().expect("bodies").push(String::from_utf8_lossy(&body).into_owned());
                }
                let mut conn = conn;
                let _ = write!(conn, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Self { port, bodies, requests }
    }

    /// Every record of every accepted body, in arrival order (a batch sent twice is there
    /// twice).
    pub fn records(&self) -> Vec<Value> {
        let bodies = self.bodies.lock().expect("bodies");
        bodies.iter().flat_map(|b| b.lines().map(|l| serde_json::from_str(l).expect("json line"))).collect()
    }
}
