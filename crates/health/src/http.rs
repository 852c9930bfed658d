//! The one piece of HTTP a check needs: the status code of a response's status line
//! (RFC 9112 section 4: `HTTP-version SP status-code SP [reason-phrase] CRLF`).

/// Why a check's answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// The answer does not start with an HTTP/1.x status line (not an HTTP server, or a
    /// malformed status code).
    #[error("not an HTTP/1.x status line")]
    InvalidStatusLine,
}

/// The status code once the status line is complete; `Ok(None)` while more bytes are
/// needed.
pub fn status_code(response: &[u8]) -> Result<Option<u16>, HealthError> {
    const PREFIX: &[u8] = b"HTTP/1.";
    let seen = response.len().min(PREFIX.len());
    if response[..seen] != PREFIX[..seen] {
        return Err(HealthError::InvalidStatusLine);
    }
    // "HTTP/1.x NNN" is 12 bytes; the code is complete once they are here.
    if response.len() < 12 {
        return Ok(None);
    }
    if !response[7].is_ascii_digit() || response[8] != b' ' {
        return Err(HealthError::InvalidStatusLine);
    }
    let code = &response[9..12];
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(HealthError::InvalidStatusLine);
    }
    Ok(Some(
        code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')),
    ))
}

/// 2xx and 3xx pass, as in Kubernetes' HTTP probes.
pub fn passes(code: u16) -> bool {
    (200..400).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Ok(Some(200)));
        assert_eq!(status_code(b"HTTP/1.0 302 Found\r\n"), Ok(Some(302)));
        assert_eq!(status_code(b"HTTP/1.1 50"), Ok(None));
        assert_eq!(status_code(b"HTT"), Ok(None));
        assert_eq!(status_code(b""), Ok(None));
        assert_eq!(
            status_code(b"SSH-2.0-OpenSSH"),
            Err(HealthError::InvalidStatusLine)
        );
        assert_eq!(
            status_code(b"HTTP/1.1 2x0 OK"),
            Err(HealthError::InvalidStatusLine)
        );
        assert!(passes(204) && passes(301) && !passes(404) && !passes(500));
    }
}
