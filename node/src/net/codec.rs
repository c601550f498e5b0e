//! The request-response codec of the reconciliation protocol: each message is a u32
//! big-endian length and that many bytes of a [`crate::proto::Request`] or
//! [`crate::proto::Response`] encoding. Lengths over the limits are refused before reading.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// Largest request: a reconciliation message or a push batch.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// Largest response: a batch of entries.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Frames raw message bytes.
#[derive(Debug, Clone, Default)]
pub struct Codec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the limit of {max}"),
        ));
    }
    // Grow the buffer as bytes arrive rather than trusting the claimed length up front.
    let mut buf = Vec::new();
    io.take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "frame cut short",
        ));
    }
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_REQUEST_BYTES).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_RESPONSE_BYTES).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::executor::block_on;
    use futures::io::Cursor;
    use libp2p::request_response::Codec as _;

    use super::*;

    /// An in-memory stream that hands out at most `chunk` bytes a read, as a network does, and
    /// records the largest buffer it was offered: the space the reader had set aside.
    struct Stream {
        inner: Cursor<Vec<u8>>,
        chunk: usize,
        largest_buffer: usize,
    }

    impl Stream {
        fn new(bytes: Vec<u8>) -> Self {
            Self {
                inner: Cursor::new(bytes),
                chunk: 1024,
                largest_buffer: 0,
            }
        }

        /// How many bytes were taken from the stream.
        fn consumed(&self) -> u64 {
            self.inner.position()
        }
    }

    impl AsyncRead for Stream {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.largest_buffer = self.largest_buffer.max(buf.len());
            let n = buf.len().min(self.chunk);
            Pin::new(&mut self.inner).poll_read(cx, &mut buf[..n])
        }
    }

    fn protocol() -> StreamProtocol {
        StreamProtocol::new("/agora/sync/2.0.0")
    }

    /// `len` as a length prefix, then `body`.
    fn frame(len: usize, body: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(len).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn read_request(stream: &mut Stream) -> io::Result<Vec<u8>> {
        block_on(Codec.read_request(&protocol(), stream))
    }

    fn read_response(stream: &mut Stream) -> io::Result<Vec<u8>> {
        block_on(Codec.read_response(&protocol(), stream))
    }

    /// A frame of exactly the limit is read whole, as written; one announcing a byte more is
    /// refused from its length prefix alone: nothing after the prefix is read and no space is
    /// set aside for it, even when the bytes are there.
    #[test]
    fn a_frame_over_the_limit_is_refused_from_its_prefix() {
        for (max, read) in [
            (MAX_REQUEST_BYTES, read_request as fn(&mut Stream) -> _),
            (MAX_RESPONSE_BYTES, read_response),
        ] {
            let body: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
            let mut whole = Stream::new(frame(max, &body));
            whole.chunk = 64 * 1024;
            assert_eq!(read(&mut whole).unwrap(), body);

            let mut over = Stream::new(frame(max + 1, &[body.as_slice(), &[0]].concat()));
            let error = read(&mut over).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
            assert_eq!(over.consumed(), 4);
            assert!(over.largest_buffer <= 4, "{}", over.largest_buffer);
        }
        // The largest length a prefix can announce.
        let mut huge = Stream::new(u32::MAX.to_be_bytes().to_vec());
        let error = read_request(&mut huge).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    }

    /// A peer that announces a frame of the limit and sends a little of it costs the reader
    /// about what it sent, not the 8 MiB announced: the buffer grows as bytes arrive. A stream
    /// that ends before the frame does, or inside the length prefix, is an error, not a short
    /// frame.
    #[test]
    fn a_frame_cut_short_is_an_error_and_only_what_arrived_is_buffered() {
        let sent = vec![7u8; 3000];
        let mut short = Stream::new(frame(MAX_REQUEST_BYTES, &sent));
        let error = read_request(&mut short).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");
        assert_eq!(short.consumed(), 4 + 3000);
        assert!(
            short.largest_buffer < 8 * 1024,
            "{} bytes set aside for 3,000 sent",
            short.largest_buffer
        );

        let mut one_short = Stream::new(frame(10, &[1; 9]));
        let error = read_response(&mut one_short).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");

        for cut in 0..4 {
            let mut prefix = Stream::new(frame(10, &[1; 10])[..cut].to_vec());
            let error = read_request(&mut prefix).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{cut}: {error}");
        }
    }

    /// What one side writes, the other reads back exactly, the empty frame included.
    #[test]
    fn frames_round_trip() {
        for body in [Vec::new(), vec![1, 2, 3], vec![9; 100_000]] {
            let mut written = Cursor::new(Vec::new());
            block_on(Codec.write_request(&protocol(), &mut written, body.clone())).unwrap();
            let mut stream = Stream::new(written.into_inner());
            assert_eq!(read_request(&mut stream).unwrap(), body);
            assert_eq!(stream.consumed(), 4 + body.len() as u64);
        }
    }
}
