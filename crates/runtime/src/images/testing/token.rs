//! A token server for Docker's registry token authentication, for [`super::TestRegistry`].
//!
//! The registry answers 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`;
//! the client asks the realm (`GET /token?service=...&scope=repository:NAME:pull,push`) with
//! basic credentials and gets a JWT whose `access` claim lists what it may do.
//!
//! # Behavior
//! - Each [`TokenUser`] is granted the requested actions it may do (`pull`, `push`) on every
//!   repository; anonymous requests get a token that grants nothing (as Docker Hub does), so the registry
//!   still refuses them; wrong credentials get 401 and a message naming authentication.
//! - Tokens are RS256 JWTs whose `x5c` header carries a self-signed certificate, the same one
//!   the registry is given as `rootcertbundle`. The key and certificate are made, and each
//!   token signed, by the `openssl` CLI: no crypto crate for a test harness.
//! - One request at a time, `Connection: close`: enough for a test registry.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

use super::other;
use crate::images::digest::temp_path;
use crate::images::RegistryAuth;

/// The `service` the registry names in its challenge and the tokens' audience.
pub const SERVICE: &str = "berth-test-registry";
/// The tokens' issuer, which the registry checks.
pub const ISSUER: &str = "berth-test-token-server";

/// What the token server was asked, for tests that check caching and refusals.
#[derive(Debug, Default)]
pub struct TokenStats {
    issued: AtomicUsize,
    refused: AtomicUsize,
}

impl TokenStats {
    /// Tokens given to clients that sent the right credentials.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// Requests refused for wrong credentials.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

/// One account of a [`TokenServer`] and the repository actions it may be granted.
#[derive(Debug, Clone)]
pub struct TokenUser {
    pub auth: RegistryAuth,
    pub actions: Vec<&'static str>,
}

impl TokenUser {
    pub fn new(username: &str, password: &str, actions: &[&'static str]) -> Self {
        Self { auth: RegistryAuth { username: username.into(), password: password.into() }, actions: actions.to_vec() }
    }
}

#[derive(Debug)]
struct Issuer {
    users: Vec<TokenUser>,
    key: PathBuf,
    /// The certificate, DER in standard base64 (the `x5c` entry).
    cert_der_b64: String,
    ttl: Duration,
    stats: Arc<TokenStats>,
}

/// A token server on 127.0.0.1 with its key and certificate in a private directory. Stopped
/// and its directory removed on drop.
#[derive(Debug)]
pub struct TokenServer {
    pub addr: SocketAddr,
    dir: PathBuf,
    stats: Arc<TokenStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Serves tokens to `users`, each valid for `ttl`.
    pub fn start(users: Vec<TokenUser>, ttl: Duration) -> io::Result<Self> {
        let dir = temp_path(&std::env::temp_dir(), "berth-token");
        fs::create_dir_all(&dir)?;
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=berth-test-token",
            "-keyout",
            path_str(&key)?,
            "-out",
            path_str(&cert)?,
        ])?;
        let cert_der_b64 = pem_body(&fs::read_to_string(&cert)?);
        let stats = Arc::new(TokenStats::default());
        let issuer = Issuer { users, key, cert_der_b64, ttl, stats: stats.clone() };
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let _ = issuer.serve(conn);
                }
            }
        });
        Ok(Self { addr, dir, stats, stop, thread: Some(thread) })
    }

    /// The realm the registry sends clients to.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The certificate the tokens are signed under (the registry's `rootcertbundle`).
    pub fn cert(&self) -> PathBuf {
        self.dir.join("token.crt")
    }

    pub fn stats(&self) -> &TokenStats {
        &self.stats
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Issuer {
    fn serve(&self, conn: TcpStream) -> io::Result<()> {
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut authorization = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("authorization") {
                    authorization = Some(value.trim().to_string());
                }
            }
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or_default();
        let (status, body) = self.answer(target, authorization.as_deref());
        let mut conn = conn;
        write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        conn.flush()
    }

    /// The status line and JSON body for `GET target` with `authorization`.
    fn answer(&self, target: &str, authorization: Option<&str>) -> (&'static str, String) {
        let Some(query) = target.strip_prefix("/token").map(|rest| rest.trim_start_matches('?')) else {
            return ("404 Not Found", r#"{"details":"no such path"}"#.into());
        };
        let user = match authorization.map(|a| self.user(a)) {
            None => None,
            Some(Some(user)) => Some(user),
            Some(None) => {
                self.stats.refused.fetch_add(1, Ordering::SeqCst);
                return (
                    "401 Unauthorized",
                    r#"{"details":"authentication failed: incorrect username or password"}"#.into(),
                );
            }
        };
        let scopes = form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>());
        let access: Vec<serde_json::Value> = match user {
            Some(user) => scopes.filter_map(|scope| granted(&scope, &user.actions)).collect(),
            None => Vec::new(),
        };
        match self.sign(user.map_or("", |u| u.auth.username.as_str()), &access) {
            Ok(token) => {
                if user.is_some() {
                    self.stats.issued.fetch_add(1, Ordering::SeqCst);
                }
                let issued_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let body = serde_json::json!({
                    "token": token, "access_token": token, "expires_in": self.ttl.as_secs(), "issued_at": issued_at,
                });
                ("200 OK", body.to_string())
            }
            Err(e) => ("500 Internal Server Error", serde_json::json!({ "details": e.to_string() }).to_string()),
        }
    }

    /// The user `Basic base64(user:password)` names, if the password is right.
    fn user(&self, authorization: &str) -> Option<&TokenUser> {
        let decoded = authorization
            .strip_prefix("Basic ")
            .and_then(|b64| STANDARD.decode(b64.trim()).ok())
            .and_then(|raw| String::from_utf8(raw).ok())?;
        self.users.iter().find(|u| decoded == format!("{}:{}", u.auth.username, u.auth.password))
    }

    /// An RS256 JWT for `subject` granting `access`.
    fn sign(&self, subject: &str, access: &[serde_json::Value]) -> io::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| other(e.to_string()))?;
        let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [self.cert_der_b64] });
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": (now + self.ttl).as_secs(),
            "nbf": now.as_secs().saturating_sub(5),
            "iat": now.as_secs(),
            "jti": format!("{}-{}", now.as_nanos(), self.stats.issued()),
            "access": access,
        });
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = openssl_stdin(&["dgst", "-sha256", "-sign", path_str(&self.key)?], signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The access entry for one requested scope (`repository:NAME:pull,push`): the requested
/// actions among `allowed`; other resource types are not granted.
fn granted(scope: &str, allowed: &[&str]) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    if kind != "repository" {
        return None;
    }
    let actions: Vec<&str> = actions.split(',').filter(|a| allowed.contains(a)).collect();
    Some(serde_json::json!({ "type": "repository", "name": name, "actions": actions }))
}

/// The base64 body of a PEM block (the DER in standard base64).
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

fn path_str(p: &Path) -> io::Result<&str> {
    p.to_str().ok_or_else(|| other(format!("{} is not UTF-8", p.display())))
}

fn openssl(args: &[&str]) -> io::Result<Vec<u8>> {
    openssl_stdin(args, b"")
}

/// Runs the `openssl` CLI (Debian's `openssl`) with `input` on stdin; returns its stdout.
fn openssl_stdin(args: &[&str], input: &[u8]) -> io::Result<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| other(format!("running openssl (install Debian's openssl package): {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(other(format!("openssl {}: {}", args[0], String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(out.stdout)
}
