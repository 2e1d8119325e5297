//! The WebSocket framing (RFC 6455) the relay speaks, sans-IO: a reader of client frames that
//! hands payload bytes on as they arrive, unmasked, and never holds a whole frame or message,
//! and the header of an (unmasked) server frame. The handshake itself is http.rs's job.
//!
//! Relaying needs no messages: the bridge forwards a byte stream and frame boundaries mean
//! nothing to it. So a 2 MiB frame costs the bridge one read buffer, not 2 MiB, however
//! slowly it arrives.

use bytes::{Buf, BytesMut};

const OPCODE_CONTINUATION: u8 = 0x0;
const OPCODE_TEXT: u8 = 0x1;
pub const OPCODE_BINARY: u8 = 0x2;
pub const OPCODE_CLOSE: u8 = 0x8;
pub const OPCODE_PING: u8 = 0x9;
pub const OPCODE_PONG: u8 = 0xA;

/// A control frame's payload may hold at most 125 bytes (RFC 6455, 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// What the client's byte stream said, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Payload bytes of a binary message, unmasked. Frame boundaries are not reported.
    Data(BytesMut),
    /// A ping; its payload goes back in a pong.
    Ping(BytesMut),
    /// A close frame, with its status code if it had one.
    Close(Option<u16>),
    /// The start of a text message: the bridge relays binary frames only.
    Text,
}

/// Why the client's stream cannot be read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The client broke the protocol; the text says how (it becomes the close reason).
    Protocol(&'static str),
    /// A message longer than the bridge's `--max-message-size`.
    TooBig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    /// Inside a data frame's payload.
    Payload {
        remaining: u64,
        mask: [u8; 4],
        offset: usize,
    },
    /// A control frame whose payload (at most 125 bytes) is read whole before it is acted on.
    Control {
        opcode: u8,
        len: usize,
        mask: [u8; 4],
    },
}

/// Reads one client connection's frames. Feed it the bytes that arrived with
/// [`FrameReader::next_event`] until it returns `Ok(None)` ("need more bytes").
#[derive(Debug)]
pub struct FrameReader {
    state: State,
    /// Inside a fragmented message (its last frame had FIN clear).
    in_message: bool,
    /// Bytes of the current message so far, to enforce `max_message`.
    message_len: u64,
    max_message: u64,
}

impl FrameReader {
    pub fn new(max_message: usize) -> FrameReader {
        FrameReader {
            state: State::Header,
            in_message: false,
            message_len: 0,
            max_message: max_message as u64,
        }
    }

    /// Takes what it can from the front of `buf` and returns the next event, `Ok(None)` when
    /// `buf` holds no complete event yet (the unread bytes stay in `buf`: at most a frame
    /// header and a control frame, 139 bytes), or the error that ends the connection.
    pub fn next_event(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, FrameError> {
        loop {
            match self.state {
                State::Header => {
                    let Some((header_len, opcode, fin, len, mask)) = parse_header(buf)? else {
                        return Ok(None);
                    };
                    buf.advance(header_len);
                    match opcode {
                        OPCODE_CONTINUATION | OPCODE_BINARY => {
                            if opcode == OPCODE_CONTINUATION && !self.in_message {
                                return Err(FrameError::Protocol(
                                    "continuation frame outside a message",
                                ));
                            }
                            if opcode == OPCODE_BINARY && self.in_message {
                                return Err(FrameError::Protocol(
                                    "new message before the last one ended",
                                ));
                            }
                            self.message_len += len;
                            if self.message_len > self.max_message {
                                return Err(FrameError::TooBig);
                            }
                            self.in_message = !fin;
                            if fin {
                                self.message_len = 0;
                            }
                            if len > 0 {
                                self.state = State::Payload {
                                    remaining: len,
                                    mask,
                                    offset: 0,
                                };
                            }
                        }
                        OPCODE_TEXT => return Ok(Some(Event::Text)),
                        _ => {
                            self.state = State::Control {
                                opcode,
                                len: len as usize,
                                mask,
                            };
                        }
                    }
                }
                State::Payload {
                    remaining,
                    mask,
                    offset,
                } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = remaining.min(buf.len() as u64) as usize;
                    let mut data = buf.split_to(take);
                    unmask(&mut data, mask, offset);
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::Header
                    } else {
                        State::Payload {
                            remaining,
                            mask,
                            offset: offset + take,
                        }
                    };
                    return Ok(Some(Event::Data(data)));
                }
                State::Control { opcode, len, mask } => {
                    if buf.len() < len {
                        return Ok(None);
                    }
                    let mut payload = buf.split_to(len);
                    unmask(&mut payload, mask, 0);
                    self.state = State::Header;
                    match opcode {
                        OPCODE_PING => return Ok(Some(Event::Ping(payload))),
                        OPCODE_CLOSE => {
                            let code = match payload.len() {
                                0 => None,
                                1 => return Err(FrameError::Protocol("close frame of one byte")),
                                _ => Some(u16::from_be_bytes([payload[0], payload[1]])),
                            };
                            return Ok(Some(Event::Close(code)));
                        }
                        // A pong answers nothing the bridge asked; it only shows the client lives.
                        _ => continue,
                    }
                }
            }
        }
    }
}

/// `(header length, opcode, fin, payload length, mask)` when `buf` starts with a whole frame
/// header; `Ok(None)` when more bytes are needed.
#[allow(clippy::type_complexity)]
fn parse_header(buf: &[u8]) -> Result<Option<(usize, u8, bool, u64, [u8; 4])>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let fin = buf[0] & 0x80 != 0;
    if buf[0] & 0x70 != 0 {
        return Err(FrameError::Protocol(
            "reserved bits set (no extension was agreed)",
        ));
    }
    let opcode = buf[0] & 0x0F;
    if !matches!(
        opcode,
        OPCODE_CONTINUATION
            | OPCODE_TEXT
            | OPCODE_BINARY
            | OPCODE_CLOSE
            | OPCODE_PING
            | OPCODE_PONG
    ) {
        return Err(FrameError::Protocol("unknown opcode"));
    }
    if buf[1] & 0x80 == 0 {
        return Err(FrameError::Protocol("client frames must be masked"));
    }
    let (len, at) = match buf[1] & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let len = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err(FrameError::Protocol("frame length over 2^63"));
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    if opcode >= OPCODE_CLOSE {
        if !fin {
            return Err(FrameError::Protocol("fragmented control frame"));
        }
        if len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(FrameError::Protocol("control frame over 125 bytes"));
        }
    }
    if buf.len() < at + 4 {
        return Ok(None);
    }
    let mask = buf[at..at + 4].try_into().expect("4 bytes");
    Ok(Some((at + 4, opcode, fin, len, mask)))
}

/// XORs `data` with the mask, `offset` bytes into the frame's payload; eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut mask = mask;
    mask.rotate_left(offset % 4);
    let word = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let value = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// Writes the header of an unmasked, final server frame into `out`; returns its length.
pub fn server_header(opcode: u8, len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x80 | opcode;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// A whole close frame: code and reason (cut to fit 123 bytes on a char boundary).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut header = [0u8; 10];
    let header_len = server_header(OPCODE_CLOSE, 2 + cut, &mut header);
    let mut frame = header[..header_len].to_vec();
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(&reason.as_bytes()[..cut]);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A masked client frame, as a browser sends it.
    fn client_frame(opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut frame = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    /// Feeds `stream` cut at `cuts`; returns the data bytes and the other events.
    fn read_all(stream: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<Event>, Option<FrameError>) {
        let mut reader = FrameReader::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut events = Vec::new();
        let mut start = 0;
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        bounds.sort_unstable();
        bounds.push(stream.len());
        for end in bounds {
            buf.extend_from_slice(&stream[start..end.max(start)]);
            start = end.max(start);
            loop {
                match reader.next_event(&mut buf) {
                    Ok(None) => break,
                    Ok(Some(Event::Data(bytes))) => data.extend_from_slice(&bytes),
                    Ok(Some(other)) => events.push(other),
                    Err(error) => return (data, events, Some(error)),
                }
            }
            assert!(
                buf.len() <= 14 + MAX_CONTROL_PAYLOAD,
                "held {} bytes",
                buf.len()
            );
        }
        (data, events, None)
    }

    #[test]
    fn payloads_come_out_unmasked_across_fragments_and_pings() {
        let mut stream = client_frame(OPCODE_BINARY, false, b"get a", [1, 2, 3, 4]);
        stream.extend(client_frame(OPCODE_PING, true, b"hi", [9, 9, 9, 9]));
        stream.extend(client_frame(
            OPCODE_CONTINUATION,
            true,
            b" b\r\n",
            [5, 6, 7, 8],
        ));
        stream.extend(client_frame(OPCODE_PONG, true, b"", [0, 0, 0, 1]));
        stream.extend(client_frame(
            OPCODE_CLOSE,
            true,
            &1000u16.to_be_bytes(),
            [7, 7, 7, 7],
        ));
        let (data, events, error) = read_all(&stream, &[]);
        assert_eq!(data, b"get a b\r\n");
        assert_eq!(
            events,
            vec![
                Event::Ping(BytesMut::from(&b"hi"[..])),
                Event::Close(Some(1000))
            ]
        );
        assert_eq!(error, None);
    }

    #[test]
    fn protocol_errors_and_oversized_messages_are_refused() {
        let unmasked = [0x82u8, 0x01, b'x'];
        assert_eq!(
            read_all(&unmasked, &[]).2,
            Some(FrameError::Protocol("client frames must be masked"))
        );
        let reserved = [0xC2u8, 0x80, 0, 0, 0, 0];
        assert!(matches!(
            read_all(&reserved, &[]).2,
            Some(FrameError::Protocol(_))
        ));
        let stray = client_frame(OPCODE_CONTINUATION, true, b"x", [1, 1, 1, 1]);
        assert!(matches!(
            read_all(&stray, &[]).2,
            Some(FrameError::Protocol(_))
        ));
        let long_ping = client_frame(OPCODE_PING, true, &[0; 126], [1, 1, 1, 1]);
        assert!(matches!(
            read_all(&long_ping, &[]).2,
            Some(FrameError::Protocol(_))
        ));
        // The size is refused from the header alone, before any payload is read.
        let mut big = vec![0x82u8, 0x80 | 127];
        big.extend_from_slice(&((1u64 << 20) + 1).to_be_bytes());
        big.extend_from_slice(&[0; 4]);
        assert_eq!(read_all(&big, &[]).2, Some(FrameError::TooBig));
        let text = client_frame(OPCODE_TEXT, true, b"get a\r\n", [1, 2, 3, 4]);
        assert_eq!(read_all(&text, &[]).1, vec![Event::Text]);
    }

    #[test]
    fn server_headers_use_the_shortest_length_form() {
        let mut out = [0u8; 10];
        assert_eq!(server_header(OPCODE_BINARY, 125, &mut out), 2);
        assert_eq!(&out[..2], &[0x82, 125]);
        assert_eq!(server_header(OPCODE_BINARY, 126, &mut out), 4);
        assert_eq!(&out[..4], &[0x82, 126, 0, 126]);
        assert_eq!(server_header(OPCODE_BINARY, 70_000, &mut out), 10);
        assert_eq!(out[1], 127);
        let close = close_frame(1008, &"é".repeat(100));
        assert!(close.len() <= 2 + MAX_CONTROL_PAYLOAD);
        assert_eq!(&close[2..4], &1008u16.to_be_bytes());
        assert!(std::str::from_utf8(&close[4..]).is_ok());
    }

    proptest! {
        /// Any split of any sequence of frames yields the same bytes and events.
        #[test]
        fn splitting_the_stream_anywhere_changes_nothing(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            mask in any::<[u8; 4]>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (i, payload) in payloads.iter().enumerate() {
                let opcode = if i == 0 { OPCODE_BINARY } else { OPCODE_CONTINUATION };
                stream.extend(client_frame(opcode, i + 1 == payloads.len(), payload, mask));
                expected.extend_from_slice(payload);
                stream.extend(client_frame(OPCODE_PING, true, &payload[..payload.len().min(10)], mask));
            }
            let whole = read_all(&stream, &[]);
            let split = read_all(&stream, &cuts);
            prop_assert_eq!(&whole.0, &expected);
            prop_assert_eq!(whole, split);
        }
    }
}
