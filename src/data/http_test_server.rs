//! A local HTTP/1.1 server for the download tests: a map of paths to replies, anything
//! else a 404. This machine, like CI, has no internet, so `seqnet data fetch` is tested
//! against mirrors on 127.0.0.1 serving good, corrupt, missing and cut-off files.
//!
//! Test-only. The unit tests of `data::fetch` use it as a module, and
//! tests/cli_eval_fetch.rs includes this same file with `#[path]`, so each side uses
//! only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the server answers for a path.
#[derive(Clone)]
pub enum Reply {
    Body(Vec<u8>),
    /// Announces the full length, sends half, and closes the connection.
    CutOff(Vec<u8>),
}

/// The server. It answers at most `MAX_REQUESTS` requests, so a test that loops on
/// retries cannot hang. It also stops after `LIFETIME`, and when dropped.
pub struct Server {
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const MAX_REQUESTS: usize = 64;
const LIFETIME: Duration = Duration::from_secs(120);

impl Server {
    pub fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        // Non-blocking accept, so the loop sees `stop` without a connection arriving.
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut served = 0;
            while served < MAX_REQUESTS
                && start.elapsed() < LIFETIME
                && !stop2.load(Ordering::Relaxed)
            {
                match listener.accept() {
                    Ok((stream, _)) => {
                        served += 1;
                        serve(stream, &routes, &log2);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        Server {
            base,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// The mirror URL for the files under `/prefix/`.
    pub fn url(&self, prefix: &str) -> String {
        format!("{}/{prefix}/", self.base)
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request on `stream` and closes it.
fn serve(stream: TcpStream, routes: &HashMap<String, Reply>, log: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = io::BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    log.lock().expect("log").push(path.clone());
    let mut stream = reader.into_inner();
    let head = |status: &str, len: usize| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nContent-Type: \
             application/octet-stream\r\nConnection: close\r\n\r\n"
        )
    };
    let _ = match routes.get(&path) {
        Some(Reply::Body(b)) => stream
            .write_all(head("200 OK", b.len()).as_bytes())
            .and_then(|_| stream.write_all(b)),
        Some(Reply::CutOff(b)) => stream
            .write_all(head("200 OK", b.len()).as_bytes())
            .and_then(|_| stream.write_all(&b[..b.len() / 2])),
        None => stream
            .write_all(head("404 Not Found", 9).as_bytes())
            .and_then(|_| stream.write_all(b"not found")),
    };
    let _ = stream.flush();
}
