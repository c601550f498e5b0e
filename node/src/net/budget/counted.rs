//! The node's transport (TCP with noise and yamux, QUIC), counting the bytes that cross it into
//! a [`Meter`], and refusing to carry any once the day's cap is reached: a dial fails at once,
//! an incoming connection is dropped before its handshake, and the connections open fail at
//! their next read or write.
//!
//! TCP is counted on the socket, under noise and yamux, so their framing is included; QUIC on
//! its streams (as libp2p-metrics' bandwidth transport counts). The relay client's transport
//! sits above this one: a relayed connection is a stream of the connection to the relay, and is
//! counted there, once.

use std::error::Error;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::future::{BoxFuture, FutureExt};
use futures::io::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, SubstreamBox};
use libp2p::core::transport::{Boxed, DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, Transport, noise, quic, tcp, yamux};

use super::Meter;

/// The error of a read, write, dial or connection once the cap is reached.
fn exhausted() -> io::Error {
    io::Error::other("the daily data budget is used up")
}

/// TCP (noise, yamux) and QUIC, counted into `meter` and closed by it at the cap.
pub(crate) fn transport(
    key: &Keypair,
    tcp_config: tcp::Config,
    meter: Arc<Meter>,
) -> Result<Gate, Box<dyn Error + Send + Sync>> {
    let on_socket = Arc::clone(&meter);
    let tcp = tcp::tokio::Transport::new(tcp_config)
        .map(move |stream, _| Counted::new(stream, Arc::clone(&on_socket)))
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let on_streams = Arc::clone(&meter);
    let quic = quic::tokio::Transport::new(quic::Config::new(key)).map(move |(peer, conn), _| {
        let counted = CountedMuxer {
            inner: StreamMuxerBox::new(conn),
            meter: Arc::clone(&on_streams),
        };
        (peer, StreamMuxerBox::new(counted))
    });
    let inner = tcp
        .or_transport(quic)
        .map(|either, _| either.into_inner())
        .boxed();
    Ok(Gate { inner, meter })
}

/// A byte stream whose reads and writes are counted, and fail once the cap is reached.
#[derive(Debug)]
pub(crate) struct Counted<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S> Counted<S> {
    fn new(inner: S, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.meter.exhausted() {
            return Poll::Ready(Err(exhausted()));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.meter.add_received(n);
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.meter.exhausted() {
            return Poll::Ready(Err(exhausted()));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.meter.add_sent(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// A QUIC connection whose streams are counted; it fails once the cap is reached.
pub(crate) struct CountedMuxer {
    inner: StreamMuxerBox,
    meter: Arc<Meter>,
}

impl std::fmt::Debug for CountedMuxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountedMuxer").finish_non_exhaustive()
    }
}

impl CountedMuxer {
    /// A new substream from `poll`, counted; none once the day's budget is used.
    fn open(
        &mut self,
        poll: impl FnOnce(&mut StreamMuxerBox) -> Poll<io::Result<SubstreamBox>>,
    ) -> Poll<io::Result<Counted<SubstreamBox>>> {
        if self.meter.exhausted() {
            return Poll::Ready(Err(exhausted()));
        }
        let stream = ready!(poll(&mut self.inner))?;
        Poll::Ready(Ok(Counted::new(stream, Arc::clone(&self.meter))))
    }
}

impl StreamMuxer for CountedMuxer {
    type Substream = Counted<SubstreamBox>;
    type Error = io::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        self.get_mut()
            .open(|inner| Pin::new(inner).poll_inbound(cx))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        self.get_mut()
            .open(|inner| Pin::new(inner).poll_outbound(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        let this = self.get_mut();
        if this.meter.exhausted() {
            return Poll::Ready(Err(exhausted()));
        }
        Pin::new(&mut this.inner).poll(cx)
    }
}

/// The transport, closed at the cap: no dial, no incoming connection.
pub(crate) struct Gate {
    inner: Boxed<(PeerId, StreamMuxerBox)>,
    meter: Arc<Meter>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

type Upgrade = BoxFuture<'static, io::Result<(PeerId, StreamMuxerBox)>>;

impl Transport for Gate {
    type Output = (PeerId, StreamMuxerBox);
    type Error = io::Error;
    type ListenerUpgrade = Upgrade;
    type Dial = Upgrade;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.inner.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        if self.meter.exhausted() {
            return Err(TransportError::Other(exhausted()));
        }
        self.inner.dial(addr, opts)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        let this = self.get_mut();
        let event = ready!(Pin::new(&mut this.inner).poll(cx));
        let meter = Arc::clone(&this.meter);
        Poll::Ready(event.map_upgrade(move |upgrade| {
            async move {
                if meter.exhausted() {
                    return Err(exhausted());
                }
                upgrade.await
            }
            .boxed()
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::io::{AsyncReadExt, AsyncWriteExt, Cursor};

    use super::super::DayClock;
    use super::*;

    #[test]
    fn reads_and_writes_are_counted_until_the_cap() {
        futures::executor::block_on(async {
            let clock = DayClock::manual(1);
            let meter = Arc::new(Meter::new(Some(100), clock.clone(), None));
            let mut stream = Counted::new(Cursor::new(vec![7u8; 60]), Arc::clone(&meter));
            let mut buf = [0u8; 60];
            stream.read_exact(&mut buf).await.unwrap();
            assert_eq!(meter.status().received, 60);
            stream.write_all(&[1u8; 40]).await.unwrap();
            assert_eq!(meter.status().sent, 40);
            // 100 of 100: nothing more today.
            assert!(stream.write_all(&[1]).await.is_err());
            assert!(stream.read(&mut buf).await.is_err());
            assert_eq!(meter.status().sent, 40, "a refused write is not counted");
            // The next day it works again.
            clock.set(2);
            stream.write_all(&[1u8; 5]).await.unwrap();
            assert_eq!(meter.status().sent, 5);
        });
    }
}
