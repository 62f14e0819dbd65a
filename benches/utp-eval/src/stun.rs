//! Just enough STUN (RFC 5389) for a Binding request/response with XOR-MAPPED-ADDRESS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::udp::STUN_MAGIC_COOKIE;

const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;

pub fn binding_request(txid: [u8; 12]) -> Vec<u8> {
    let mut m = Vec::with_capacity(20);
    m.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    m.extend_from_slice(&0u16.to_be_bytes());
    m.extend_from_slice(&STUN_MAGIC_COOKIE);
    m.extend_from_slice(&txid);
    m
}

pub fn txid(m: &[u8]) -> [u8; 12] {
    let mut t = [0; 12];
    t.copy_from_slice(&m[8..20]);
    t
}

pub fn is_binding_request(m: &[u8]) -> bool {
    u16::from_be_bytes([m[0], m[1]]) == BINDING_REQUEST
}

/// A Binding success response telling `mapped` to the sender of the request `txid`.
pub fn binding_response(txid: [u8; 12], mapped: SocketAddr) -> Vec<u8> {
    let mut attr = Vec::new();
    let xport = mapped.port() ^ 0x2112;
    match mapped.ip() {
        IpAddr::V4(ip) => {
            attr.extend_from_slice(&[0, 1]);
            attr.extend_from_slice(&xport.to_be_bytes());
            let o = ip.octets();
            for i in 0..4 {
                attr.push(o[i] ^ STUN_MAGIC_COOKIE[i]);
            }
        }
        IpAddr::V6(ip) => {
            attr.extend_from_slice(&[0, 2]);
            attr.extend_from_slice(&xport.to_be_bytes());
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&STUN_MAGIC_COOKIE);
            key[4..].copy_from_slice(&txid);
            let o = ip.octets();
            for i in 0..16 {
                attr.push(o[i] ^ key[i]);
            }
        }
    }
    let mut m = Vec::new();
    m.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    m.extend_from_slice(&((4 + attr.len()) as u16).to_be_bytes());
    m.extend_from_slice(&STUN_MAGIC_COOKIE);
    m.extend_from_slice(&txid);
    m.extend_from_slice(&ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
    m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    m.extend_from_slice(&attr);
    m
}

/// The mapped address in a Binding success response, if it is one.
pub fn parse_binding_response(m: &[u8]) -> Option<SocketAddr> {
    if m.len() < 20 || u16::from_be_bytes([m[0], m[1]]) != BINDING_SUCCESS {
        return None;
    }
    let tx = txid(m);
    let mut at = &m[20..];
    while at.len() >= 4 {
        let typ = u16::from_be_bytes([at[0], at[1]]);
        let len = usize::from(u16::from_be_bytes([at[2], at[3]]));
        let v = at.get(4..4 + len)?;
        if (typ == ATTR_XOR_MAPPED_ADDRESS || typ == ATTR_MAPPED_ADDRESS) && v.len() >= 8 {
            let xor = typ == ATTR_XOR_MAPPED_ADDRESS;
            let mut port = u16::from_be_bytes([v[2], v[3]]);
            if xor {
                port ^= 0x2112;
            }
            let ip = match (v[1], v.len()) {
                (1, 8) => {
                    let mut o = [v[4], v[5], v[6], v[7]];
                    if xor {
                        for i in 0..4 {
                            o[i] ^= STUN_MAGIC_COOKIE[i];
                        }
                    }
                    IpAddr::V4(Ipv4Addr::from(o))
                }
                (2, 20) => {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(&v[4..20]);
                    if xor {
                        let mut key = [0u8; 16];
                        key[..4].copy_from_slice(&STUN_MAGIC_COOKIE);
                        key[4..].copy_from_slice(&tx);
                        for i in 0..16 {
                            o[i] ^= key[i];
                        }
                    }
                    IpAddr::V6(Ipv6Addr::from(o))
                }
                _ => return None,
            };
            return Some(SocketAddr::new(ip, port));
        }
        at = at.get((4 + len + 3) / 4 * 4..).unwrap_or(&[]);
    }
    None
}
