//! Tests of `server/fast.rs`: the Date header, answers written as their framing says, a long
//! body written as it goes (the first `FIRST_MAX` bytes in one write, then pieces of `OUT_MAX`),
//! the reader's buffer, chunk sizes.

use super::*;

fn prefixed(prefix: Bytes, rest: ProxyBody) -> ProxyBody {
    ProxyBody::Prefixed {
        prefix: Some(prefix),
        rest: Box::new(rest),
    }
}

#[test]
fn the_date_is_an_http_date_of_now() {
    let d = date();
    let text = std::str::from_utf8(&d).unwrap();
    let parsed = httpdate::parse_http_date(text).unwrap();
    let age = SystemTime::now().duration_since(parsed).unwrap();
    assert!(age < Duration::from_secs(2), "{text}");
}

/// What `write_body` writes of `body` after the head `HEAD`, and whether it succeeded.
async fn written(body: ProxyBody, framing: Framing) -> (String, bool) {
    let (mut near, mut far) = tokio::io::duplex(1 << 20);
    let mut out = b"HEAD".to_vec();
    let mut body = body;
    let ok = write_body(&mut near, &mut out, &mut body, framing)
        .await
        .is_ok();
    drop(near);
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut far, &mut got)
        .await
        .unwrap();
    (String::from_utf8(got).unwrap(), ok)
}

fn two_frames() -> ProxyBody {
    prefixed(Bytes::from_static(b"hello "), ProxyBody::full("world"))
}

#[tokio::test]
async fn bodies_are_framed_as_the_head_says() {
    let cases = [
        (
            ProxyBody::full("hello"),
            Framing::Length(5),
            "HEADhello",
            true,
        ),
        (ProxyBody::full("hello"), Framing::Length(0), "HEAD", true),
        (
            two_frames(),
            Framing::Chunked,
            "HEAD6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
            true,
        ),
        (two_frames(), Framing::Close, "HEADhello world", true),
        (ProxyBody::Empty, Framing::Chunked, "HEAD0\r\n\r\n", true),
        // A body longer or shorter than its length breaks the connection (as hyper's).
        (ProxyBody::full("hello"), Framing::Length(4), "", false),
        (
            ProxyBody::full("hello"),
            Framing::Length(6),
            "HEADhello",
            false,
        ),
    ];
    for (body, framing, want, ok) in cases {
        let (got, was_ok) = written(body, framing).await;
        assert_eq!(
            (was_ok, got.as_str()),
            (ok, if ok { want } else { &got[..] }),
            "{framing:?}"
        );
        if !ok {
            assert!(want.starts_with(&got) || got.is_empty(), "{got:?}");
        }
    }
}

#[tokio::test]
async fn a_long_body_is_written_as_it_goes() {
    // 200 ready frames of 1 KiB: the first FIRST_MAX in one write, then pieces of at most
    // OUT_MAX, in a buffer given back after the first write.
    let mut body = ProxyBody::Empty;
    for _ in 0..200 {
        body = prefixed(Bytes::from(vec![b'x'; 1024]), body);
    }
    let (mut near, mut far) = tokio::io::duplex(OUT_MAX + 2048);
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut far, &mut got)
            .await
            .unwrap();
        got.len()
    });
    let mut out = Vec::new();
    write_body(&mut near, &mut out, &mut body, Framing::Length(200 * 1024))
        .await
        .unwrap();
    assert!(
        out.capacity() <= OUT_MAX + CHUNK_FRAMING,
        "{}",
        out.capacity()
    );
    drop(near);
    assert_eq!(reader.await.unwrap(), 200 * 1024);
}

/// Counts the writes it takes.
#[derive(Default)]
struct Counted {
    writes: Vec<usize>,
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writes.push(buf.len());
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn an_answer_that_fits_goes_out_in_one_write_and_a_longer_one_in_pieces() {
    let frames = |n: usize| {
        let mut body = ProxyBody::Empty;
        for _ in 0..n {
            body = prefixed(Bytes::from(vec![b'x'; 8 * 1024]), body);
        }
        body
    };
    // 50 KiB of ready 8 KiB frames behind a head: one write.
    let (mut w, mut out) = (Counted::default(), b"HEAD".to_vec());
    let mut body = frames(6);
    write_body(&mut w, &mut out, &mut body, Framing::Length(6 * 8192))
        .await
        .unwrap();
    assert_eq!(w.writes, [4 + 6 * 8192]);
    // 1 MiB: the first write at most FIRST_MAX, every one after the first FIRST_MAX bytes
    // at most OUT_MAX.
    let (mut w, mut out) = (Counted::default(), b"HEAD".to_vec());
    let mut body = frames(128);
    write_body(&mut w, &mut out, &mut body, Framing::Length(128 * 8192))
        .await
        .unwrap();
    assert_eq!(w.writes.iter().sum::<usize>(), 4 + 128 * 8192);
    assert!(w.writes[0] > OUT_MAX, "{:?}", w.writes);
    let mut before = 0;
    for &n in &w.writes {
        let most = if before >= FIRST_MAX {
            OUT_MAX
        } else {
            FIRST_MAX
        };
        assert!(n <= most, "{n} after {before}: {:?}", w.writes);
        before += n;
    }
    // Pieces of OUT_MAX, not one per frame.
    assert!(w.writes.len() < 128 / 2 + 4, "{:?}", w.writes);
}

#[test]
fn chunk_sizes_are_upper_case_hex() {
    for n in [0u64, 1, 15, 16, 255, 4096, 0xABCDEF, u64::MAX] {
        assert_eq!(hex(n, &mut [0; 16]), format!("{n:X}").as_bytes());
    }
}

#[tokio::test]
async fn the_reader_holds_what_it_read_and_no_more_than_a_buffer() {
    let (mut near, mut far) = tokio::io::duplex(4 * READ_BUF);
    let mut r = Reader::new(b"").unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut far, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(r.fill_now(&mut near).await, Fill::Bytes);
    assert_eq!(r.data(), b"GET / HTTP/1.1\r\n\r\n");
    // Room for what came, not a whole read buffer.
    assert!(r.buf.capacity() < READ_BUF / 4, "{}", r.buf.capacity());
    r.consume(5);
    // More than a buffer's worth waiting: the reader stops at READ_BUF bytes not taken,
    // keeping the ones it has (moved to the front), and the rest stays on the socket.
    let more = vec![b'x'; 2 * READ_BUF];
    tokio::io::AsyncWriteExt::write_all(&mut far, &more)
        .await
        .unwrap();
    while !r.is_full() {
        assert_eq!(r.fill_now(&mut near).await, Fill::Bytes);
    }
    assert_eq!(r.data().len(), READ_BUF);
    assert!(r.data().starts_with(b" HTTP/1.1\r\n\r\nxxx"));
    assert_eq!(r.take().len(), READ_BUF);
    assert!(r.is_empty());
    // The rest: another full buffer, then the last 13 bytes, then the close.
    while !r.is_full() {
        assert_eq!(r.fill_now(&mut near).await, Fill::Bytes);
    }
    r.consume(READ_BUF);
    drop(far);
    let mut got = 0;
    loop {
        match r.fill_now(&mut near).await {
            Fill::Bytes => got = r.data().len(),
            Fill::Closed => break,
            Fill::Pending => tokio::task::yield_now().await,
        }
    }
    assert_eq!(got, 13);
}

#[test]
fn the_reader_keeps_what_it_was_not_asked_for() {
    assert!(Reader::new(&[0; READ_BUF + 1]).is_none());
    let mut r = Reader::new(b"abcdef").unwrap();
    assert_eq!(r.data(), b"abcdef");
    r.consume(2);
    assert_eq!(r.data(), b"cdef");
    assert_eq!(&r.take()[..], b"cdef");
    assert!(r.is_empty());
    r.consume(5);
    assert!(r.is_empty());
}
