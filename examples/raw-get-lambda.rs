//! The second floor for Lambda-mode benchmarks: the no-I/O function
//! (`examples/noop-lambda.rs`) plus one hand-written Redis `GET` per invocation on a
//! kept-open connection, answering with the cached bytes. Its time above the no-I/O
//! function is what one Redis round trip costs a function that runs one request at a
//! time (the server's and the runtime's wake-ups included, which a tight loop of GETs
//! does not pay). `REDIS_URL` (`redis://host:port`, no TLS or password) and
//! `BENCH_KEY` say where.

use lambda_http::{Error, Request, run, service_fn};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

#[path = "shared/answer.rs"]
mod answer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let url = std::env::var("REDIS_URL")?;
    let address = url.trim_start_matches("redis://").trim_end_matches('/');
    let key = std::env::var("BENCH_KEY")?;
    let command = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let stream = &*Box::leak(Box::new(Mutex::new(stream)));
    let command = &*command.leak();
    run(service_fn(move |_request: Request| async move {
        answer::cached_bytes(get(&mut *stream.lock().await, command).await?)
    }))
    .await
}

/// Sends the GET and reads its bulk reply (`$<len>\r\n<bytes>\r\n`).
async fn get(stream: &mut TcpStream, command: &str) -> Result<Vec<u8>, Error> {
    stream.write_all(command.as_bytes()).await?;
    let mut reply = Vec::with_capacity(4096);
    loop {
        let mut chunk = [0; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("Redis closed the connection".into());
        }
        reply.extend_from_slice(&chunk[..n]);
        let Some(end) = reply.windows(2).position(|w| w == b"\r\n") else {
            continue;
        };
        let length: i64 = std::str::from_utf8(&reply[1..end])?.parse()?;
        let length = usize::try_from(length).map_err(|_| "the key is not cached")?;
        let start = end + 2;
        if reply.len() >= start + length + 2 {
            return Ok(reply[start..start + length].to_vec());
        }
    }
}
