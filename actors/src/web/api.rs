//! The interface's JSON API: `GET /api/session` (the CSRF token), `POST /api/request` (a
//! control command, run exactly as the control socket runs it: the same `Request` types,
//! the same answers), and the file responses `/s/SHARE_ID/raw/PATH`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::login::{may_change, session};
use super::State;
use crate::control::cmd::{CommandError, ErrorCode, Request};

/// Lines `recent_log` answers at most.
pub(super) const MAX_LOG_LINES: usize = 1000;
/// How much of the log's end `recent_log` reads.
const LOG_TAIL: u64 = 512 * 1024;

fn json_answer(status: u16, value: &Value) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(serde_json::to_string(value).unwrap_or_default())
}

/// 401: no session.
pub(super) fn login_required() -> HttpResponse {
    json_answer(401, &json!({"error": "login_required", "message": "log in first (clearskies open)"}))
}

/// 403: a state-changing request without its CSRF token, or from another site.
pub(super) fn refused_csrf() -> HttpResponse {
    json_answer(403, &json!({"error": "csrf", "message": "refused: the request lacks this session's CSRF token"}))
}

fn error_answer(e: &CommandError) -> HttpResponse {
    let status = match e.error {
        ErrorCode::NotUnderstood => 400,
        ErrorCode::NotShared | ErrorCode::NoSuchFile => 404,
        _ => 422,
    };
    json_answer(status, &serde_json::to_value(e).unwrap_or(Value::Null))
}

/// `GET /api/session`.
pub(super) async fn session_info(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    match session(&req, &state) {
        Some((_, s)) => {
            json_answer(200, &json!({"csrf": s.csrf, "software": crate::SOFTWARE, "https": req.app_config().secure()}))
        }
        None => login_required(),
    }
}

/// The largest command accepted.
const MAX_COMMAND: usize = 64 * 1024;
/// How long a client may take to send its command.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The body, read only now (after the session and CSRF checks): at most [`MAX_COMMAND`]
/// bytes, within [`BODY_TIMEOUT`].
async fn read_body(mut payload: web::Payload) -> Option<Vec<u8>> {
    use futures_util::StreamExt as _;
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.ok()?;
            if body.len() + chunk.len() > MAX_COMMAND {
                return None;
            }
            body.extend_from_slice(&chunk);
        }
        Some(body)
    };
    tokio::time::timeout(BODY_TIMEOUT, read).await.ok().flatten()
}

/// Commands the interface may send: everything a user does with the CLI but `stop`,
/// `read_file` (files come as `/s/…/raw/`), `web_login` and `set_web_password` (the
/// terminal's), `inject_fault`; a command added later is not sent from a browser until
/// it is listed here.
const ALLOWED: &[&str] = &[
    "status",
    "pause",
    "resume",
    "list_peers",
    "remove_peer",
    "list_shares",
    "create_share",
    "remove_share",
    "export_keys",
    "rotate_keys",
    "confirm_deletes",
    "list_versions",
    "restore_version",
    "revert",
    "verify_backup",
    "add_share",
    "create_access_code",
    "list_access_codes",
    "cancel_access_code",
    "file_url",
    "list_files",
    "get_config",
    "get_config_value",
    "set_config",
    "set_config_value",
    "recent_log",
];

/// `POST /api/request`: one control command.
pub(super) async fn request(req: HttpRequest, state: web::Data<State>, payload: web::Payload) -> HttpResponse {
    let Some((_, s)) = session(&req, &state) else { return login_required() };
    if !may_change(&req, Some(&s)) {
        return refused_csrf();
    }
    let Some(body) = read_body(payload).await else {
        let message = format!("a command is one JSON object of at most {MAX_COMMAND} bytes, sent within 10 s");
        return json_answer(413, &json!({"error": "too_large", "message": message}));
    };
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return json_answer(400, &json!({"error": "bad_json", "message": "the body must be one JSON command object"}));
    };
    match value.get("type").and_then(Value::as_str) {
        Some("recent_log") => return recent_log(&state, &value).await,
        Some(t) if !ALLOWED.contains(&t) && Request::parse(&body).is_ok() => {
            let message = format!("`{t}` is not available in the web interface");
            return json_answer(403, &json!({"error": "not_allowed", "message": message}));
        }
        _ => {}
    }
    let request = match Request::parse(&body) {
        Ok(r) => r,
        Err(e) => return error_answer(&e),
    };
    let with_qr = matches!(request, Request::CreateAccessCode(_));
    let with_about = matches!(request, Request::GetConfig);
    match request.run(&state.targets.control).await.0 {
        Ok(mut answer) => {
            if with_qr {
                add_qr(&mut answer);
            }
            if with_about {
                add_about(&mut answer);
            }
            json_answer(200, &answer)
        }
        Err(e) => error_answer(&e),
    }
}

/// A code's `url` as a QR code (`qr_svg`, an SVG document), for phones.
fn add_qr(answer: &mut Value) {
    let Some(url) = answer.get("url").and_then(Value::as_str) else { return };
    let Ok(code) = qrcode::QrCode::new(url.as_bytes()) else { return };
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(240, 240).quiet_zone(true).build();
    if let Some(map) = answer.as_object_mut() {
        map.insert("qr_svg".into(), Value::String(svg));
    }
}

/// What the settings page shows beside each value (`settings`, in `get_config`'s answer
/// over the web): its description, default, and whether a change applies at once.
fn add_about(answer: &mut Value) {
    let about: Vec<Value> = crate::config::SETTINGS
        .iter()
        .map(|s| {
            let runtime = !matches!(s.applies, crate::config::Applies::AtStart);
            json!({"name": s.name, "doc": s.doc, "default": s.default, "env": s.env, "runtime": runtime})
        })
        .collect();
    if let Some(map) = answer.as_object_mut() {
        map.insert("settings".into(), Value::Array(about));
    }
}

/// `recent_log`: the log's last lines (`lines`, at most [`MAX_LOG_LINES`]).
async fn recent_log(state: &State, command: &Value) -> HttpResponse {
    use std::io::{Read, Seek, SeekFrom};
    let want = command.get("lines").and_then(Value::as_u64).map_or(200, |n| n.min(MAX_LOG_LINES as u64));
    let path = state.targets.data_dir.join("log");
    let file = path.clone();
    // On the blocking pool: the HTTP thread serves everyone.
    let read = web::block(move || {
        let mut tail = Vec::new();
        let mut f = std::fs::File::open(&file)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)))?;
        f.take(LOG_TAIL).read_to_end(&mut tail)?;
        Ok::<_, std::io::Error>(tail)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    let tail = match read {
        Ok(tail) => tail,
        Err(e) => {
            let message =
                format!("no log at {} ({e}): a daemon in the foreground logs to its terminal", path.display());
            return json_answer(404, &json!({"error": "no_log", "message": message}));
        }
    };
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = text.lines().collect();
    // The first line of a tail read from the middle of the file is cut.
    let skip = usize::from(tail.len() as u64 == LOG_TAIL);
    let from = lines.len().saturating_sub(usize::try_from(want).unwrap_or(MAX_LOG_LINES)).max(skip);
    json_answer(200, &json!({"lines": lines[from.min(lines.len())..]}))
}

/// `GET /s/SHARE_ID/raw/PATH[?download=1]`: a file of a share, for the logged-in browser.
pub(super) async fn raw(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if session(&req, &state).is_none() {
        return login_required();
    }
    // From the raw path, decoded once here (a `%2F` becomes a `/`): the share then checks
    // the path as a whole.
    let rest = req.uri().path().strip_prefix("/s/").unwrap_or_default();
    let Some((id, file)) = rest.split_once("/raw/") else { return super::text(404, "expected /s/SHARE_ID/raw/PATH") };
    let Some(file) = super::files::percent_decode(file) else { return super::text(404, "a malformed path") };
    let download = req.query_string().split('&').any(|p| p == "download=1");
    super::files::serve(&req, &state, id, file, download).await
}
