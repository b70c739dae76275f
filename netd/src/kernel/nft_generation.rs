//! The nftables ruleset generation: a counter the kernel moves on every committed nftables
//! transaction in the network namespace (`NFT_MSG_GETGEN`). netd reads it before listing table
//! `kizuna` and lists again only when it moved (`kernel::nftables::observe`), so a pass that
//! finds the firewall as netd left it does not spawn `nft`, the largest phase of a full pass on
//! a slow router.
//!
//! Hand-written on `netlink-sys` (the socket rtnetlink already uses): one 20-byte request and one
//! attribute in the answer. The Rust nftables crates either run `nft` (`nftables`) or bind the C
//! library libnftnl, and none exposes this message.

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_GEN_ID: u16 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
/// `nlmsghdr` (16 bytes) and `nfgenmsg` (4).
const HEADERS: usize = 20;

/// The current ruleset generation of this thread's network namespace.
pub fn generation() -> io::Result<u32> {
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let seq = 1;
    sock.send(&request(seq), 0)?;
    let (answer, _) = sock.recv_from_full()?;
    parse(&answer)
}

/// `NFT_MSG_GETGEN`: the netlink header, then `nfgenmsg` (AF_UNSPEC, version 0, resource 0).
fn request(seq: u32) -> [u8; HEADERS] {
    let mut m = [0u8; HEADERS];
    m[0..4].copy_from_slice(&(HEADERS as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN).to_ne_bytes());
    m[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("nftables generation: {why}"))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

/// The generation in the kernel's answer (`NFT_MSG_NEWGEN`, attribute `NFTA_GEN_ID`, big-endian),
/// or the error it sent instead.
fn parse(buf: &[u8]) -> io::Result<u32> {
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
        if len < 16 || off + len > buf.len() {
            return Err(invalid("truncated message"));
        }
        let msg = &buf[off..off + len];
        match u16_at(msg, 4) {
            NLMSG_ERROR if len >= 20 => {
                let errno = i32::from_ne_bytes(msg[16..20].try_into().expect("4 bytes"));
                if errno != 0 {
                    return Err(io::Error::from_raw_os_error(-errno));
                }
            }
            t if t == NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN => {
                let mut at = HEADERS;
                while at + 4 <= len {
                    let alen = u16_at(msg, at) as usize;
                    if alen < 4 || at + alen > len {
                        break;
                    }
                    // The top two bits are flags (nested, network byte order).
                    if u16_at(msg, at + 2) & 0x3fff == NFTA_GEN_ID && alen >= 8 {
                        return Ok(u32::from_be_bytes(msg[at + 4..at + 8].try_into().expect("4 bytes")));
                    }
                    at += (alen + 3) & !3;
                }
                return Err(invalid("answer without NFTA_GEN_ID"));
            }
            _ => {}
        }
        off += (len + 3) & !3;
    }
    Err(invalid("no answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newgen(id: u32) -> Vec<u8> {
        let mut m = request(7).to_vec();
        m[4..6].copy_from_slice(&(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN).to_ne_bytes());
        // NFTA_GEN_ID, then NFTA_GEN_PROC_PID, as the kernel sends them.
        for (ty, v) in [(NFTA_GEN_ID, id.to_be_bytes()), (2, 4242u32.to_be_bytes())] {
            m.extend_from_slice(&8u16.to_ne_bytes());
            m.extend_from_slice(&ty.to_ne_bytes());
            m.extend_from_slice(&v);
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn reads_the_generation_from_the_kernels_answer() {
        assert_eq!(parse(&newgen(0x0102_0304)).unwrap(), 0x0102_0304);
    }

    #[test]
    fn a_netlink_error_is_the_callers_error_and_short_answers_are_refused() {
        let mut err = vec![0u8; 36];
        err[0..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(parse(&err).unwrap_err().raw_os_error(), Some(1));
        let whole = newgen(5);
        assert!(parse(&whole[..whole.len() - 4]).is_err(), "a cut answer must not parse");
        assert!(parse(&[]).is_err());
    }

    /// In a network namespace of its own (this thread only): the generation moves when a table
    /// is added, and stays when nothing changes. Needs root; skipped outside CI without it.
    #[test]
    fn the_generation_moves_with_each_nftables_change() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var("CI").is_err(), "CI=true: this test needs root");
            eprintln!("skipping: needs root");
            return;
        }
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            let g0 = generation().expect("generation");
            assert_eq!(generation().unwrap(), g0, "nothing changed");
            let nft = |cmd: &str| {
                let out = std::process::Command::new("nft").arg(cmd).output().expect("running nft");
                assert!(out.status.success(), "nft {cmd}: {}", String::from_utf8_lossy(&out.stderr));
            };
            nft("add table inet netd_generation_test");
            let g1 = generation().unwrap();
            assert_ne!(g1, g0, "adding a table did not move the generation");
            nft("add chain inet netd_generation_test c");
            assert_ne!(generation().unwrap(), g1);
        })
        .join()
        .unwrap();
    }
}
