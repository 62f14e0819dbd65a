//! **Modified copy of librqbit-utp 0.7.0, vendored in ClearSkies.** ClearSkies added LEDBAT
//! congestion control (RFC 6817 / BEP 29; now the default, CUBIC still selectable) because
//! upstream ran CUBIC only and did not yield to TCP, and SYN retransmission in `connect`
//! (bounded; `Error::ConnectTimedOut`) because upstream sent one SYN and hole punching loses the
//! first. Also: `timestamp_difference_microseconds` measured at receipt (BEP 29), the SYN's
//! timestamp in microseconds. Against SYN floods and forged sources (also ClearSkies): SYN
//! cookies, so that `accept()` sees a connection only once the remote acknowledged our
//! SYN-ACK; limits on incoming connections per source and in total (part of the pool stays
//! for `connect`); `UtpStream::abort`. Every difference is listed in README.md, "CHANGES"; the
//! changes are Apache-2.0 like the rest of the crate.

// RTT, RTO, congestion
// Recent RFCs that we might try to implement exactly to make everyting super explicit
// RFC 9293 https://datatracker.ietf.org/doc/html/rfc9293 (TCP) (2022, standard)
// RFC 6298 https://datatracker.ietf.org/doc/html/rfc6298 (2011, draft) - RTO calculation, references RTT calculation
// RFC 5681 https://datatracker.ietf.org/doc/html/rfc5681 (2009, draft) - congestion control, fast retransmit, fast recovery
//
// rfc8985 (draft, 2021) - RACK algorithm

// ClearSkies: LEDBAT congestion control is in congestion/ledbat.rs (was: TODO).

#[macro_use]
mod macros;
mod congestion;
mod constants;
#[cfg(test)]
mod e2e_tests;
mod error;
mod message;
mod metrics;
pub mod mtu;
pub mod raw;
mod recovery;
mod rtte;
mod seq_nr;
mod socket;
mod spawn_utils;
mod stream;
mod stream_dispatch;
mod stream_rx;
mod stream_tx;
mod stream_tx_segments;
#[cfg(test)]
mod syn_flood_tests; // ClearSkies
#[cfg(test)]
mod syn_retransmit_tests; // ClearSkies
#[cfg(test)]
mod test_util;
mod traits;
mod utils;

pub use congestion::ledbat::LedbatOpts;
pub use error::{Error, Result};
pub use librqbit_dualstack_sockets::BindDevice;
pub use socket::{
    CongestionConfig, CongestionControllerKind, SocketOpts, UtpSocket, UtpSocketUdp,
    UtpSocketUdpOpts,
};
pub use stream::UtpStream;
pub use stream_rx::UtpStreamReadHalf;
pub use stream_tx::UtpStreamWriteHalf;
// ClearSkies: the environment and the send trait exported, for a Transport of our own.
pub use librqbit_dualstack_sockets::PollSendToVectored;
pub use traits::{DefaultUtpEnvironment, Transport, UtpEnvironment};

type Payload = Vec<u8>;
