//! One cached answer: an upstream's response checked, kept as its bytes (compression
//! pointers and all) without the OPT record, with where each record's TTL sits, and written
//! out again for each client that asks.
//!
//! Kept: NOERROR and NXDOMAIN that answer exactly the question asked (same ID, one question
//! of the same name, type and class, not truncated, every record within the message, an OPT
//! of version 0 last if any, no TSIG or SIG(0)), and SERVFAIL for a few seconds (RFC 2308
//! section 7.1). A positive answer is kept for the smallest TTL of its answer section,
//! within the configured bounds; a negative one (NXDOMAIN, or NOERROR without answers) for
//! the SOA's minimum or its TTL, whichever is less (RFC 2308 section 5), and not at all
//! without an SOA. TTLs above 2^31 - 1 count as 0 (RFC 2181 section 8).
//!
//! Written out, the answer takes the client's ID, RD, question (its case) and EDNS: an OPT
//! of ours if the query had one, and the client's UDP size. What does not fit is shed as a
//! fresh answer from the zone is: the additional section first, then everything but the
//! question, with TC (RFC 2181 section 9). TTLs count down from the time it was kept.

use std::time::{Duration, Instant};

use crate::edns;
use crate::question::Question;
use crate::verdict::Transport;
use crate::wire::{HEADER_LEN, TYPE_OPT};

/// How long an upstream's SERVFAIL is kept: briefly, so that a burst of queries for a
/// failing name does not each wait for the upstream (RFC 2308 section 7.1 allows 5 minutes).
const SERVFAIL_TIME: Duration = Duration::from_secs(5);

/// The TTL of a stale answer (RFC 8767 section 4).
pub(crate) const STALE_TTL: u32 = 30;

const TYPE_SOA: u16 = 6;
const TYPE_SIG: u16 = 24;
const TYPE_TSIG: u16 = 250;

const NOERROR: u8 = 0;
const SERVFAIL: u8 = 2;
const NXDOMAIN: u8 = 3;

/// How long answers are kept, from `[dns.cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetimes {
    pub(crate) min: u32,
    pub(crate) max: u32,
    pub(crate) negative: u32,
}

/// An answer as kept.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The upstream's message without its OPT record, TTLs as received (too large ones 0).
    message: Box<[u8]>,
    /// Where each record's TTL sits in `message`, in message order.
    ttls: Box<[u16]>,
    /// Where the question ends and the additional section begins.
    question_end: u16,
    additional_at: u16,
    pub(crate) stored: Instant,
    /// How long it is fresh, from `stored`.
    pub(crate) lifetime: Duration,
    /// A refresh has been asked for.
    pub(crate) refreshing: bool,
}

/// What the TTLs of a written answer are.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Age {
    /// Counted down from when it was kept.
    Fresh(Instant),
    /// Expired, served under RFC 8767.
    Stale,
}

impl Entry {
    /// The entry of `response` to `question`, or `None` if it is not to be kept.
    pub(crate) fn new(
        question: &Question<'_>,
        response: &[u8],
        lifetimes: Lifetimes,
        now: Instant,
    ) -> Option<Entry> {
        let read = Read::of(question, response)?;
        let seconds = match read.rcode {
            SERVFAIL => SERVFAIL_TIME.as_secs() as u32,
            NXDOMAIN => read.negative_ttl(lifetimes)?,
            NOERROR if read.answer_ttl.is_none() => read.negative_ttl(lifetimes)?,
            NOERROR => read.answer_ttl?.clamp(lifetimes.min, lifetimes.max),
            _ => return None,
        };
        if seconds == 0 {
            return None;
        }
        let mut message: Box<[u8]> = response[..read.end].into();
        if read.had_opt {
            let additionals = u16::from_be_bytes([message[10], message[11]]) - 1;
            message[10..12].copy_from_slice(&additionals.to_be_bytes());
        }
        for &at in &read.ttls {
            let at = usize::from(at);
            if message[at] & 0x80 != 0 {
                message[at..at + 4].fill(0);
            }
        }
        Some(Entry {
            message,
            ttls: read.ttls.into_boxed_slice(),
            question_end: read.question_end,
            additional_at: read.additional_at,
            stored: now,
            lifetime: Duration::from_secs(u64::from(seconds)),
            refreshing: false,
        })
    }

    /// The response code kept.
    pub(crate) fn rcode(&self) -> u8 {
        self.message[3] & 0x0f
    }

    /// Memory held, for `/status`: the message, the TTL offsets and the entry itself.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.message.len() + 2 * self.ttls.len()
    }

    /// Writes the answer to `question` over `transport` into `out` (cleared first).
    pub(crate) fn write(
        &self,
        question: &Question<'_>,
        transport: Transport,
        age: Age,
        out: &mut Vec<u8>,
    ) {
        let opt = question.opt();
        let room =
            question
                .limit(transport)
                .saturating_sub(if opt.is_some() { edns::OPT_LEN } else { 0 });
        let counts = |at: usize| u16::from_be_bytes([self.message[at], self.message[at + 1]]);
        let (answers, authority, additionals) = (counts(6), counts(8), counts(10));
        let (end, counts, truncated) = if self.message.len() <= room {
            (self.message.len(), [answers, authority, additionals], false)
        } else if usize::from(self.additional_at) <= room {
            (
                usize::from(self.additional_at),
                [answers, authority, 0],
                false,
            )
        } else {
            (usize::from(self.question_end), [0, 0, 0], true)
        };
        out.clear();
        out.extend_from_slice(&self.message[..end]);
        let header = question.header();
        out[..2].copy_from_slice(&header[..2]);
        // QR and AA as the upstream said, TC ours, RD the client's; RA, AD, CD and the
        // rcode as the upstream said.
        out[2] = 0x80 | (self.message[2] & 0x04) | u8::from(truncated) << 1 | (header[2] & 0x01);
        let additionals = counts[2] + u16::from(opt.is_some());
        for (at, count) in [(6, counts[0]), (8, counts[1]), (10, additionals)] {
            out[at..at + 2].copy_from_slice(&count.to_be_bytes());
        }
        out[HEADER_LEN..usize::from(self.question_end)].copy_from_slice(question.section());
        let elapsed = match age {
            Age::Fresh(now) => {
                let elapsed = now.saturating_duration_since(self.stored).as_secs();
                Some((elapsed, self.lifetime.as_secs().saturating_sub(elapsed)))
            }
            Age::Stale => None,
        };
        for &at in self.ttls.iter().take_while(|&&at| usize::from(at) < end) {
            let at = usize::from(at);
            let ttl = match elapsed {
                Some((elapsed, remaining)) => {
                    let kept = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]);
                    let left = u64::from(kept).saturating_sub(elapsed);
                    left.min(remaining) as u32
                }
                None => STALE_TTL,
            };
            out[at..at + 4].copy_from_slice(&ttl.to_be_bytes());
        }
        if let Some(opt) = opt {
            edns::write_opt(opt.dnssec_ok, out);
        }
    }
}

/// What checking a response found.
struct Read {
    rcode: u8,
    /// Where the message ends without its OPT record.
    end: usize,
    had_opt: bool,
    question_end: u16,
    additional_at: u16,
    ttls: Vec<u16>,
    /// The smallest TTL of the answer section; `None` if it is empty.
    answer_ttl: Option<u32>,
    /// The smaller of the authority SOA's TTL and minimum.
    soa_ttl: Option<u32>,
}

impl Read {
    /// Checks `response` against `question`; `None` if it does not answer it or does not
    /// hold together.
    fn of(question: &Question<'_>, response: &[u8]) -> Option<Read> {
        let header = response.get(..HEADER_LEN)?;
        let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        // Our ID; QR set, opcode QUERY, TC clear; one question; an extended rcode comes
        // with the OPT record, checked below.
        if header[..2] != question.header()[..2]
            || header[2] & 0xfa != 0x80
            || count(4) != 1
            || response.len() > usize::from(u16::MAX)
        {
            return None;
        }
        let question_end = HEADER_LEN + question.section().len();
        // The name in any case (the key is lowercase), type and class exactly.
        let asked = response.get(HEADER_LEN..question_end)?;
        let (name, rest) = asked.split_at(asked.len() - 4);
        let lowercase = name.iter().map(u8::to_ascii_lowercase);
        if !lowercase.eq(question.name_key().iter().copied())
            || rest != &question.section()[name.len()..]
        {
            return None;
        }
        let mut read = Read {
            rcode: header[3] & 0x0f,
            end: response.len(),
            had_opt: false,
            question_end: question_end as u16,
            additional_at: 0,
            ttls: Vec::new(),
            answer_ttl: None,
            soa_ttl: None,
        };
        let mut at = question_end;
        let sections = [(0, count(6)), (1, count(8)), (2, count(10))];
        for (section, records) in sections {
            if section == 2 {
                read.additional_at = at as u16;
            }
            for index in 0..records {
                let start = at;
                at = skip_name(response, at)?;
                let at_root = at == start + 1 && response[start] == 0;
                let fixed = response.get(at..at + 10)?;
                let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
                let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
                let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
                let rdata_at = at + 10;
                at = rdata_at + usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
                let rdata = response.get(rdata_at..at)?;
                match (section, rtype) {
                    (2, TYPE_OPT) => {
                        // Last, at the root, extended rcode 0 and version 0.
                        if index + 1 != records || !at_root || fixed[4] != 0 || fixed[5] != 0 {
                            return None;
                        }
                        read.had_opt = true;
                        read.end = start;
                        continue;
                    }
                    (_, TYPE_OPT) | (2, TYPE_TSIG | TYPE_SIG) => return None,
                    (0, _) => read.answer_ttl = Some(read.answer_ttl.map_or(ttl, |t| t.min(ttl))),
                    (1, TYPE_SOA) => {
                        let minimum = rdata.get(rdata.len().checked_sub(4)?..)?;
                        let minimum = u32::from_be_bytes(minimum.try_into().ok()?);
                        read.soa_ttl = Some(ttl.min(minimum));
                    }
                    _ => {}
                }
                read.ttls.push((at - rdata.len() - 6) as u16);
            }
        }
        if at != response.len() {
            return None;
        }
        Some(read)
    }

    /// How long a negative answer is kept; `None` without an SOA to say.
    fn negative_ttl(&self, lifetimes: Lifetimes) -> Option<u32> {
        let soa = self.soa_ttl?.min(lifetimes.negative);
        Some(self.answer_ttl.map_or(soa, |answer| answer.min(soa)))
    }
}

/// Where the name at `at` ends: after its root label, or after a compression pointer
/// (which is not followed: only its bounds matter here).
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *message.get(at)?;
        match len {
            0 => return Some(at + 1),
            1..=63 => at += usize::from(len) + 1,
            0xc0..=0xff => {
                message.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
    }
}
