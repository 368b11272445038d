//! Bad-input corpus: a misbehaving endpoint. A fake server written here (std's TcpListener on
//! 127.0.0.1 only) stands in for Google and answers one request of a run wrongly — HTML error
//! pages, truncated or non-JSON bodies, huge bodies, slow bodies, resets — while answering the
//! rest like Cloud Storage would. Which request and how is chosen by the first path segment of
//! the endpoint each case points `INFRA_GCP_ENDPOINT` at. Every case must name the METHOD and
//! URL that went wrong, give a hint, exit 1 and write nothing.

use super::{Case, case, run_table};
use crate::support::TestEnv;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

/// The environment: GCS state in bucket `bkt` at whatever endpoint the case names.
const ENV_TOML: &str = "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[backend]\nkind = \"gcs\"\nbucket = \"bkt\"\nprefix = \"infra\"\n";

/// Which request of a run the server answers wrongly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// `POST upload/storage/v1/b/bkt/o` creating the lock object.
    Lock,
    /// `GET storage/v1/b/bkt/o/infra%2Ftest%2Estate%2Ejson`, the state's first read: its
    /// download without a generation (which names the generation in `x-goog-generation`), or
    /// its metadata when the download's answer named none.
    Metadata,
    /// The same with `alt=media` and the generation the metadata named: the state document.
    Media,
    /// `GET storage/v1/b/bkt/o?versions=true`: the state's generations.
    List,
    /// `GET storage/v1/b/bkt/o/infra%2Ftest%2Elock`: who holds the lock.
    Holder,
}

impl Target {
    fn slug(self) -> &'static str {
        match self {
            Target::Lock => "lock",
            Target::Metadata => "metadata",
            Target::Media => "media",
            Target::List => "list",
            Target::Holder => "holder",
        }
    }

    fn parse(slug: &str) -> Option<Self> {
        [
            Target::Lock,
            Target::Metadata,
            Target::Media,
            Target::List,
            Target::Holder,
        ]
        .into_iter()
        .find(|target| target.slug() == slug)
    }

    /// The command that reaches this request, and the METHOD and path the error must name.
    fn command(self) -> (&'static [&'static str], &'static str, &'static str) {
        match self {
            Target::Lock => (
                &["plan", "--env", "test"],
                "POST",
                "upload/storage/v1/b/bkt/o",
            ),
            Target::Metadata => (
                &["plan", "--env", "test"],
                "GET",
                "storage/v1/b/bkt/o/infra%2Ftest%2Estate%2Ejson",
            ),
            Target::Media => (
                &["state", "pull", "--env", "test"],
                "GET",
                "storage/v1/b/bkt/o/infra%2Ftest%2Estate%2Ejson",
            ),
            Target::List => (
                &["state", "versions", "--env", "test"],
                "GET",
                "storage/v1/b/bkt/o",
            ),
            Target::Holder => (
                &["force-unlock", "--env", "test", "--force", "42"],
                "GET",
                "storage/v1/b/bkt/o/infra%2Ftest%2Elock",
            ),
        }
    }
}

/// One request as the fake server read it.
struct Request {
    method: String,
    path: String,
    query: String,
    body: Vec<u8>,
}

/// Returns the fake server's base URL, starting it on first use.
fn server() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}/", listener.local_addr().expect("local address"));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = serve(stream);
                });
            }
        });
        base
    })
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Ok(Some(Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        body,
    }))
}

fn serve(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    while let Some(request) = read_request(&mut reader)? {
        // `/<target>--<behaviour>/<the API path>`
        let mut segments = request.path.trim_start_matches('/').splitn(2, '/');
        let scenario = segments.next().unwrap_or_default().to_string();
        let api_path = segments.next().unwrap_or_default().to_string();
        let (target, behaviour) = scenario.split_once("--").unwrap_or((&scenario, ""));
        let phase = phase_of(&request, &api_path);
        if Target::parse(target) == phase {
            misbehave(&mut stream, behaviour)?;
            // Whatever the behaviour, this connection is done with.
            return Ok(());
        }
        if is_unlock(&request, &api_path) {
            write!(
                stream,
                "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
            )?;
            continue;
        }
        behave(&mut stream, phase, Target::parse(target))?;
    }
    Ok(())
}

fn phase_of(request: &Request, api_path: &str) -> Option<Target> {
    let media = request.query.contains("alt=media") && request.query.contains("generation=");
    match (request.method.as_str(), api_path) {
        ("POST", "upload/storage/v1/b/bkt/o")
            if String::from_utf8_lossy(&request.body).contains("test.lock") =>
        {
            Some(Target::Lock)
        }
        ("GET", "storage/v1/b/bkt/o/infra%2Ftest%2Estate%2Ejson") if media => Some(Target::Media),
        ("GET", "storage/v1/b/bkt/o/infra%2Ftest%2Estate%2Ejson") => Some(Target::Metadata),
        ("GET", "storage/v1/b/bkt/o/infra%2Ftest%2Elock") => Some(Target::Holder),
        ("GET", "storage/v1/b/bkt/o") => Some(Target::List),
        _ => None,
    }
}

/// Returns whether the request releases the lock (answered 204 like Cloud Storage).
fn is_unlock(request: &Request, api_path: &str) -> bool {
    request.method == "DELETE" && api_path == "storage/v1/b/bkt/o/infra%2Ftest%2Elock"
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    extra_headers: &str,
    body: &[u8],
) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

fn envelope(code: u16, status: &str, message: &str) -> Vec<u8> {
    serde_json::json!({"error": {"code": code, "message": message, "status": status}})
        .to_string()
        .into_bytes()
}

/// Answers like Cloud Storage for a bucket with a lock 42 and no state, or, when the state
/// document is what misbehaves, a state of generation 7.
fn behave(
    stream: &mut TcpStream,
    phase: Option<Target>,
    target: Option<Target>,
) -> std::io::Result<()> {
    let json = "application/json";
    match phase {
        Some(Target::Lock) => respond(stream, "200 OK", json, "", br#"{"generation": "42"}"#),
        Some(Target::Metadata) if target == Some(Target::Media) => respond(
            stream,
            "200 OK",
            json,
            "",
            br#"{"name": "infra/test.state.json", "generation": "7"}"#,
        ),
        Some(Target::Holder) => respond(
            stream,
            "200 OK",
            json,
            "",
            br#"{"name": "infra/test.lock", "generation": "42", "timeCreated": "2026-01-01T00:00:00Z"}"#,
        ),
        Some(Target::List) => respond(stream, "200 OK", json, "", br#"{"items": []}"#),
        Some(Target::Metadata | Target::Media) | None => {
            let body = envelope(404, "NOT_FOUND", "No such object");
            respond(stream, "404 Not Found", json, "", &body)
        }
    }
}

/// Streams `total` bytes of `a` (chunked when `chunked`), stopping quietly when the client
/// hangs up — as a bounded client must.
fn stream_huge(
    stream: &mut TcpStream,
    status: &str,
    total: usize,
    chunked: bool,
) -> std::io::Result<()> {
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n".to_string()
    } else {
        format!("Content-Length: {total}\r\n")
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nRetry-After: 0\r\n{framing}\r\n"
    )?;
    let block = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        let size = block.len().min(total - sent);
        if chunked {
            write!(stream, "{size:x}\r\n")?;
        }
        stream.write_all(&block[..size])?;
        if chunked {
            stream.write_all(b"\r\n")?;
        }
        sent += size;
    }
    if chunked {
        stream.write_all(b"0\r\n\r\n")?;
    }
    stream.flush()
}

fn misbehave(stream: &mut TcpStream, behaviour: &str) -> std::io::Result<()> {
    let html = "text/html; charset=UTF-8";
    let json = "application/json";
    let retry_now = "Retry-After: 0\r\n";
    match behaviour {
        "html-502" => respond(
            stream,
            "502 Bad Gateway",
            html,
            retry_now,
            b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
        ),
        "html-503" => respond(
            stream,
            "503 Service Unavailable",
            html,
            retry_now,
            b"<!DOCTYPE html><html><body><p>The service is unavailable. Please try again later.</p></body></html>",
        ),
        "envelope-500" => respond(
            stream,
            "500 Internal Server Error",
            json,
            retry_now,
            &envelope(500, "INTERNAL", "Backend Error"),
        ),
        "envelope-429" => respond(
            stream,
            "429 Too Many Requests",
            json,
            retry_now,
            &envelope(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Write requests'"),
        ),
        "envelope-401" => respond(
            stream,
            "401 Unauthorized",
            json,
            "WWW-Authenticate: Bearer realm=\"https://accounts.google.com/\"\r\n",
            &envelope(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
        ),
        "envelope-403" => respond(
            stream,
            "403 Forbidden",
            json,
            "",
            &envelope(
                403,
                "PERMISSION_DENIED",
                "ci@proj-test.iam.gserviceaccount.com does not have storage.objects.create access to the Google Cloud Storage object.",
            ),
        ),
        "envelope-403-huge-message" => respond(
            stream,
            "403 Forbidden",
            json,
            "",
            &envelope(403, "PERMISSION_DENIED", &"denied ".repeat(5000)),
        ),
        "odd-json-500" => respond(
            stream,
            "500 Internal Server Error",
            json,
            retry_now,
            br#"{"message": "upstream exploded", "trace": [1, 2, 3]}"#,
        ),
        "plain-200" => respond(stream, "200 OK", "text/plain", "", b"OK"),
        "html-200" => respond(
            stream,
            "200 OK",
            html,
            "",
            b"<html><body><form action=\"/login\">Sign in to continue</form></body></html>",
        ),
        "truncated-200" => respond(
            stream,
            "200 OK",
            json,
            "",
            br#"{"name": "infra/test.state.json", "generation": "7", "meta"#,
        ),
        "xml-200" => respond(
            stream,
            "200 OK",
            "application/xml",
            "",
            b"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult/>",
        ),
        "binary-200" => respond(stream, "200 OK", json, "", &[0xff, 0xfe, 0x00, 0x81, 0x7b]),
        "empty-200" => respond(stream, "200 OK", json, "", b""),
        "array-200" => respond(stream, "200 OK", json, "", b"[1, 2, 3]"),
        "huge-200" => stream_huge(stream, "200 OK", 60 * 1024 * 1024, false),
        "huge-chunked-200" => stream_huge(stream, "200 OK", 60 * 1024 * 1024, true),
        "huge-chunked-200-mb" => stream_huge(stream, "200 OK", 200 * 1024 * 1024, true),
        "huge-503" => stream_huge(stream, "503 Service Unavailable", 50 * 1024 * 1024, false),
        "huge-chunked-500" => stream_huge(stream, "500 Internal Server Error", 50 * 1024 * 1024, true),
        "slow-body" => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"gen"
            )?;
            stream.flush()?;
            std::thread::sleep(Duration::from_secs(3));
            Ok(())
        }
        "no-answer" => {
            std::thread::sleep(Duration::from_secs(3));
            Ok(())
        }
        "reset" => Ok(()),
        "short-body" => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"generation\""
            )?;
            stream.flush()
        }
        "not-http" => {
            stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")?;
            stream.flush()
        }
        "redirect-loop" => respond(
            stream,
            "307 Temporary Redirect",
            html,
            "Location: /lock--redirect-loop/upload/storage/v1/b/bkt/o?uploadType=multipart\r\n",
            b"",
        ),
        other => panic!("unknown behaviour {other}"),
    }
}

/// A case: the `target` request answered with `behaviour`; the error must name `names` too.
fn server_case(target: Target, behaviour: &str, names: &[&str]) -> Case {
    let (arguments, method, path) = target.command();
    let scenario = format!("{}--{behaviour}", target.slug());
    let endpoint = format!("{}{scenario}/", server());
    let place = format!("{method} {endpoint}{path}");
    case(&scenario, arguments)
        .env("INFRA_GCP_ENDPOINT", &endpoint)
        .env("INFRA_GCP_CREDENTIALS", "none")
        .env("INFRA_HTTP_TIMEOUT", "400ms")
        .names(&[place.as_str()])
        .names(names)
        .absent(&"a".repeat(1001))
}

/// The cases of this table.
pub fn cases() -> Vec<Case> {
    use Target::*;
    vec![
        // The lock's create answered wrongly: nothing was locked, nothing is released.
        server_case(
            Lock,
            "html-502",
            &[
                "502 BAD_GATEWAY",
                "502 Bad Gateway nginx",
                "run the command again later",
            ],
        ),
        server_case(
            Lock,
            "html-503",
            &["503 SERVICE_UNAVAILABLE", "The service is unavailable"],
        ),
        server_case(Lock, "envelope-500", &["500 INTERNAL: Backend Error"]),
        server_case(
            Lock,
            "envelope-429",
            &["429 RESOURCE_EXHAUSTED", "--parallelism"],
        ),
        server_case(
            Lock,
            "envelope-401",
            &[
                "401 UNAUTHENTICATED",
                "gcloud auth application-default login",
            ],
        ),
        server_case(
            Lock,
            "envelope-403",
            &[
                "403 PERMISSION_DENIED",
                "storage.objects.create",
                "grant it",
            ],
        ),
        server_case(
            Lock,
            "odd-json-500",
            &["500 INTERNAL_SERVER_ERROR", "upstream exploded"],
        ),
        server_case(Lock, "reset", &["INFRA_HTTP_TIMEOUT"]),
        server_case(Lock, "no-answer", &["no complete answer within 400ms"]),
        server_case(Lock, "not-http", &["check the network"]),
        server_case(Lock, "redirect-loop", &["redirect"]),
        server_case(Lock, "huge-503", &["52428800 bytes; first 1000 shown"]),
        server_case(
            Lock,
            "huge-chunked-500",
            &["more than 65536 bytes; first 1000 shown"],
        ),
        server_case(Lock, "short-body", &["check the network"]),
        // The state's metadata answered wrongly, under a held lock that must be released.
        server_case(
            Metadata,
            "plain-200",
            &["not JSON", "starting `OK`", "is the API"],
        ),
        server_case(Metadata, "html-200", &["not JSON", "Sign in to continue"]),
        server_case(
            Metadata,
            "truncated-200",
            &["not JSON", "EOF while parsing"],
        ),
        server_case(Metadata, "xml-200", &["not JSON", "<?xml"]),
        server_case(Metadata, "binary-200", &["not JSON"]),
        server_case(
            Metadata,
            "huge-200",
            &["larger than 33554432 bytes (62914560 bytes)"],
        ),
        server_case(
            Metadata,
            "huge-chunked-200",
            &["larger than 33554432 bytes, more than"],
        ),
        server_case(Metadata, "slow-body", &["no complete answer within 400ms"]),
        server_case(Metadata, "envelope-401", &["401 UNAUTHENTICATED"]),
        server_case(
            Metadata,
            "envelope-403-huge-message",
            &["403 PERMISSION_DENIED", "bytes; first 1000 shown"],
        ),
        server_case(Metadata, "html-503", &["503 SERVICE_UNAVAILABLE"]),
        // The state document itself.
        server_case(Media, "html-502", &["502 BAD_GATEWAY"]),
        server_case(Media, "huge-200", &["larger than 33554432 bytes"]),
        server_case(Media, "reset", &["check the network"]),
        // Listing generations.
        server_case(List, "plain-200", &["not JSON"]),
        server_case(List, "envelope-403", &["403 PERMISSION_DENIED"]),
        server_case(List, "truncated-200", &["EOF while parsing"]),
        // Who holds the lock, for force-unlock.
        server_case(Holder, "html-200", &["not JSON"]),
        server_case(Holder, "envelope-401", &["401 UNAUTHENTICATED"]),
        server_case(Holder, "xml-200", &["<?xml"]),
    ]
}

/// A fixture: environment `test` whose state is in GCS at the fake server.
fn fixture() -> TestEnv {
    let env = TestEnv::empty();
    env.write("envs/test/env.toml", ENV_TOML);
    env
}

#[test]
fn server_bad_answers() {
    run_table(&fixture, &cases());
}

/// Returns the peak resident memory of a running process, in KiB (`VmHWM`).
fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A 200 MiB answer of undeclared length is refused once the cap is read, without the memory
/// the whole answer would take.
#[test]
fn a_huge_answer_keeps_memory_bounded() {
    let env = fixture();
    let endpoint = format!("{}metadata--huge-chunked-200-mb/", server());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_infra"))
        .args(["plan", "--env", "test"])
        .current_dir(env.root.path())
        .env("INFRA_GCP_ENDPOINT", &endpoint)
        .env("INFRA_GCP_CREDENTIALS", "none")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn infra");
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_memory_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("larger than 33554432 bytes"), "{stderr}");
    // The cap is 32 MiB; the answer is 200 MiB. Unbounded reading would pass 200 MiB.
    assert!(peak > 0, "no memory sample was taken");
    assert!(peak < 100 * 1024, "peak resident memory {peak} KiB");
}
