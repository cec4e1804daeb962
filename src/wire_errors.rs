//! The HTTP parser's own answers, in our error format.
//!
//! actix-http answers a request it cannot parse (a control byte in a header
//! value, a request line it refuses), a request head over its buffer, and a
//! head that trickles in past `client_request_timeout` by itself, before any
//! handler runs: a status line and no body (400, 431, 408). Every non-200
//! answer of ours must carry `customerErrorMessage`, so each accepted
//! connection is wrapped in [`JsonErrors`], which spots such a bodiless error
//! head on its way out and sends the same status with our JSON body instead.
//!
//! Our own answers never match: every error they send has a JSON body (and a
//! raw CR LF cannot occur inside JSON text), so only the parser's heads do.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::ApiError;

/// A connection whose bodiless parser errors leave as JSON answers.
pub struct JsonErrors<Io> {
    io: Io,
    /// The replacement answer still to be written, and how much of it went.
    pending: Vec<u8>,
    written: usize,
    request_timeout: std::time::Duration,
}

impl<Io> JsonErrors<Io> {
    pub fn new(io: Io, request_timeout: std::time::Duration) -> Self {
        JsonErrors {
            io,
            pending: Vec::new(),
            written: 0,
            request_timeout,
        }
    }
}

impl<Io: AsyncWrite + Unpin> JsonErrors<Io> {
    fn flush_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for JsonErrors<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for JsonErrors<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.flush_pending(cx))?;
        match find_bodiless_error(buf) {
            // Only what precedes the error head goes through, so the head is
            // never split between two writes and is always seen whole.
            Some((start, _, _)) if start > 0 => {
                Pin::new(&mut this.io).poll_write(cx, &buf[..start])
            }
            Some((_, end, status)) => {
                this.pending = replacement(&buf[..end], status, this.request_timeout);
                this.written = 0;
                // The head counts as written; the replacement is flushed now
                // or by the next write, flush or shutdown.
                let _ = this.flush_pending(cx)?;
                Poll::Ready(Ok(end))
            }
            None => Pin::new(&mut this.io).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.flush_pending(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.flush_pending(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The statuses actix-http answers by itself without a body.
const PARSER_STATUSES: [u16; 4] = [400, 408, 431, 500];

/// Where a bodiless parser error head starts and ends in `buf`, and its status.
fn find_bodiless_error(buf: &[u8]) -> Option<(usize, usize, u16)> {
    const PREFIX: &[u8] = b"HTTP/1.1 ";
    let mut from = 0;
    while let Some(offset) = find(&buf[from..], PREFIX) {
        let start = from + offset;
        from = start + PREFIX.len();
        let status = buf
            .get(from..from + 3)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| digits.parse::<u16>().ok());
        let Some(status) = status.filter(|s| PARSER_STATUSES.contains(s)) else {
            continue;
        };
        let Some(head_len) = find(&buf[start..], b"\r\n\r\n") else {
            continue;
        };
        let end = start + head_len + 4;
        let head = buf[start..end].to_ascii_lowercase();
        if find(&head, b"\r\ncontent-length: 0\r\n").is_some() {
            return Some((start, end, status));
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The same status line and headers (but the length), with our JSON body.
fn replacement(head: &[u8], status: u16, request_timeout: std::time::Duration) -> Vec<u8> {
    let error = match status {
        400 => ApiError::MalformedRequest,
        408 => ApiError::RequestTimeout(request_timeout),
        431 => ApiError::RequestHeadTooLarge,
        _ => ApiError::Internal("HTTP layer error".into()),
    };
    crate::metrics::request(
        "http_parser",
        status,
        error.code(),
        std::time::Duration::ZERO,
    );
    let body = error.body();
    let text = String::from_utf8_lossy(head);
    let mut out = Vec::with_capacity(head.len() + body.len() + 64);
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.to_ascii_lowercase().starts_with("content-length:") {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_parser_statuses_are_found() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        assert_eq!(find_bodiless_error(bare), Some((0, bare.len(), 400)));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n{\"a\":\"b\"}   ";
        assert_eq!(find_bodiless_error(ours), None);
        let not_found = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(find_bodiless_error(not_found), None);
        let mut pipelined = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec();
        let at = pipelined.len();
        pipelined.extend_from_slice(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n",
        );
        assert_eq!(
            find_bodiless_error(&pipelined),
            Some((at, pipelined.len(), 431))
        );
    }

    #[test]
    fn the_replacement_keeps_the_status_and_carries_a_message() {
        let head = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: x\r\n\r\n";
        let out = replacement(head, 400, std::time::Duration::from_secs(5));
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["code"], "malformed_request");
        assert!(json["customerErrorMessage"].as_str().unwrap().len() <= 50);
    }
}
