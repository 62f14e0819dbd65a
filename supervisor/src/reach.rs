//! How `clearskies status` shows reach: the peer port, the router's port mapping, what STUN
//! saw, and the one-line verdict.

use crate::log::escape_line;

/// The `status` lines on how peers reach this computer.
pub(crate) fn reach_lines(r: &clearskies_actors::reach::ReachStatus) -> String {
    let m = &r.port_mapping;
    let mapping = match (m.state.as_str(), &m.error) {
        ("mapped", _) => format!(
            "{} by {} on {}",
            m.external.join(", "),
            m.method.as_deref().unwrap_or("?"),
            m.gateway.as_deref().unwrap_or("?")
        ),
        ("failed", Some(e)) => format!("failed: {}", escape_line(e)),
        (state, _) => state.to_owned(),
    };
    let public = match &r.public {
        None => "no STUN server set".to_owned(),
        Some(p) => match (&p.udp, p.nat, &p.error) {
            (Some(udp), Some(nat), _) => format!("{udp} (UDP), {}", nat.describe()),
            (_, _, Some(e)) => format!("unknown: {}", escape_line(e)),
            _ => "asking STUN…".to_owned(),
        },
    };
    format!(
        "\npeer port: {}\nport mapping: {mapping}\npublic address: {public}\nreach: {}",
        r.listening.join(", "),
        escape_line(&r.summary)
    )
}
