//! Logging in and out of the web interface over HTTP: `GET /login?token=…` (a one-time
//! link from `clearskies open`), `POST /login` (the password form), `POST /logout`; and
//! the checks every handler makes: the session cookie, the CSRF token, the `Origin`.

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use tracing::{info, warn};

use super::auth::{self, Session};
use super::{unix_now, State};

/// The file holding the password's Argon2 hash, in the data directory.
pub const PASSWORD_FILE: &str = "web-password";

/// The open session `req` carries, if any: its cookie value and the session.
pub(super) fn session(req: &HttpRequest, state: &State) -> Option<(String, Session)> {
    let id = req.cookie(&state.cookie)?.value().to_owned();
    session_of(state, &id).map(|s| (id, s))
}

/// The session whose cookie value is `id`, if it is open. One opened under another
/// password than the present one (set, changed or removed since) is over.
pub(super) fn session_of(state: &State, id: &str) -> Option<Session> {
    let stamp = password_stamp(state);
    let mut sessions = state.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let session = sessions.get(id, unix_now())?;
    if session.password != stamp {
        sessions.close(id);
        return None;
    }
    Some(session)
}

/// Which password is in effect: the hash file's modification time, to the nanosecond
/// (`None`: no password). Compared for equality only, so a clock set back changes nothing.
fn password_stamp(state: &State) -> Option<std::time::SystemTime> {
    std::fs::metadata(state.targets.data_dir.join(PASSWORD_FILE)).ok()?.modified().ok()
}

/// Whether `req` came from the user who runs the daemon, over a plain loopback connection
/// (see `local_user`); never over HTTPS, where only the password lets anyone in.
pub(super) fn own_user(req: &HttpRequest) -> bool {
    if req.app_config().secure() {
        return false;
    }
    let uid = req.conn_data::<super::local_user::ClientUid>().and_then(|c| c.0);
    uid == Some(rustix::process::getuid().as_raw())
}

/// Whether a state-changing request may go ahead: it comes from our own pages (an
/// `Origin`, when the browser sends one, naming this host) and, with a session, carries
/// its CSRF token.
pub(super) fn may_change(req: &HttpRequest, session: Option<&Session>) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = header(header::ORIGIN) {
        let host = header(header::HOST).unwrap_or_default();
        let ours = ["http://", "https://"].iter().any(|scheme| origin.strip_prefix(scheme) == Some(host));
        if !ours {
            return false;
        }
    }
    match session {
        None => true,
        Some(s) => header(header::HeaderName::from_static("x-csrf-token"))
            .is_some_and(|t| auth::same(t.as_bytes(), s.csrf.as_bytes())),
    }
}

/// The login page, with `message` shown (escaped) if any.
pub(super) fn login_page(state: &State, status: u16, message: Option<&str>) -> HttpResponse {
    let Some(page) = super::assets::text(state, "login.html") else {
        return super::text(500, "the web interface is missing from this build");
    };
    let note = message.map(|m| format!("<p class=\"error\" id=\"login-error\">{}</p>", escape(m))).unwrap_or_default();
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(page.replace("<!--MESSAGE-->", &note))
}

/// Text for HTML.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// A new session's cookie, and the redirect to the interface.
fn logged_in(req: &HttpRequest, state: &State, lifetime: u64) -> HttpResponse {
    let stamp = password_stamp(state);
    let opened =
        state.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).open(lifetime, unix_now(), stamp);
    let Some((id, _)) = opened else { return super::text(500, "no random numbers for a session") };
    let cookie = Cookie::build(state.cookie.clone(), id)
        .path("/")
        .secure(req.app_config().secure())
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(CookieAge::seconds(i64::try_from(lifetime).unwrap_or(i64::MAX)))
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, "/"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// What `/login` takes in its query.
#[derive(Debug, serde::Deserialize)]
pub(super) struct LinkQuery {
    token: Option<String>,
}

/// `GET /login[?token=…]`: a one-time link opens a session; otherwise the login page.
pub(super) async fn page(req: HttpRequest, state: web::Data<State>, query: web::Query<LinkQuery>) -> HttpResponse {
    let Some(token) = &query.token else {
        if session(&req, &state).is_some() {
            return HttpResponse::SeeOther().insert_header((header::LOCATION, "/")).finish();
        }
        return login_page(&state, 200, None);
    };
    if !own_user(&req) {
        return login_page(&state, 403, Some("login links work on this computer only: log in with the password"));
    }
    let key = state.targets.files_token.as_bytes();
    let redeemed =
        state.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).redeem(key, token, unix_now());
    match redeemed {
        Ok(()) => {
            info!("web interface: logged in with a one-time link");
            logged_in(&req, &state, auth::LINK_SESSION)
        }
        Err(why) => login_page(&state, 403, Some(why)),
    }
}

/// The password form.
#[derive(Debug, serde::Deserialize)]
pub(super) struct PasswordForm {
    password: String,
}

/// `POST /login`: the password opens a longer session.
pub(super) async fn password(req: HttpRequest, state: web::Data<State>, form: web::Form<PasswordForm>) -> HttpResponse {
    if !may_change(&req, None) {
        return super::text(403, "a login form from another site");
    }
    let hash = match std::fs::read_to_string(state.targets.data_dir.join(PASSWORD_FILE)) {
        Ok(h) => h,
        Err(_) => {
            let why = "no password is set: run `clearskies open` for a one-time link, or `clearskies web-password` to set one";
            return login_page(&state, 401, Some(why));
        }
    };
    // Counted per IPv4 address or IPv6 /64, as the peer port counts sources.
    let source = req.peer_addr().map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| crate::net::source_of(a.ip()));
    if !state.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).attempt(source, unix_now()) {
        return login_page(&state, 429, Some("too many attempts: wait a minute"));
    }
    let password = form.into_inner().password;
    let right = web::block(move || auth::verify_password(&password, &hash)).await.unwrap_or(false);
    if right {
        info!("web interface: logged in with the password");
        logged_in(&req, &state, auth::PASSWORD_SESSION)
    } else {
        let peer = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        warn!(%peer, "web interface: a wrong password");
        login_page(&state, 401, Some("wrong password"))
    }
}

/// `POST /logout`.
pub(super) async fn logout(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let Some((id, s)) = session(&req, &state) else {
        return HttpResponse::SeeOther().insert_header((header::LOCATION, "/login")).finish();
    };
    if !may_change(&req, Some(&s)) {
        return super::api::refused_csrf();
    }
    state.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).close(&id);
    let mut gone = Cookie::build(state.cookie.clone(), "").path("/").finish();
    gone.make_removal();
    HttpResponse::SeeOther().cookie(gone).insert_header((header::LOCATION, "/login")).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("<script>\"x\" & 'y'"), "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;");
    }
}
