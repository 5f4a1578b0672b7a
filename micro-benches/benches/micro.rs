//! Micro-benchmarks of the per-call work that cannot overlap I/O: encoding a call, cutting
//! frames, dispatching, and one whole call in-process without sockets.
//!
//! `cargo bench -p monogusa-micro-benches`. The end-to-end figures (ratios to raw sockets) come from
//! `cargo run --release --example bench`.
#![allow(missing_docs)] // tests, not API

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use monogusa::__private::bench::{
    Frames, Functions, decode_args, decode_call, decode_reply, encode_call, encode_reply_with,
};

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    let mut out = Vec::with_capacity(8192);
    group.bench_function("encode call (16 B args)", |b| {
        b.iter(|| {
            out.clear();
            encode_call(black_box(7), "echo", &([7u8; 16],), &mut out).unwrap();
        })
    });
    let big = vec![7u8; 4096];
    group.throughput(Throughput::Bytes(4096));
    group.bench_function("encode call (4 KiB Vec<u8> args)", |b| {
        b.iter(|| {
            out.clear();
            encode_call(black_box(7), "echo", &(&big,), &mut out).unwrap();
        })
    });
    let bytes = serde_bytes::ByteBuf::from(big.clone());
    group.bench_function("encode call (4 KiB serde_bytes args)", |b| {
        b.iter(|| {
            out.clear();
            encode_call(black_box(7), "echo", &(&bytes,), &mut out).unwrap();
        })
    });
    group.finish();

    let mut frame = Vec::new();
    encode_call(7, "echo", &([7u8; 16],), &mut frame).unwrap();
    c.bench_function("codec/decode call header", |b| {
        b.iter(|| black_box(decode_call(black_box(&frame[4..])).unwrap()))
    });
    c.bench_function("codec/decode call header + 16 B args", |b| {
        b.iter(|| {
            let (id, name, args) = decode_call(black_box(&frame[4..])).unwrap();
            let (bytes,): ([u8; 16],) = decode_args(args).unwrap();
            black_box((id, name, bytes));
        })
    });
}

fn frames(c: &mut Criterion) {
    let mut burst = Vec::new();
    for id in 1..=64 {
        encode_call(id, "echo", &([7u8; 16],), &mut burst).unwrap();
    }
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(64));
    let mut frames = Frames::new();
    group.bench_function("cut 64 buffered frames", |b| {
        b.iter(|| {
            let mut source: &[u8] = &burst;
            frames.fill_from(&mut source).unwrap();
            let mut n = 0;
            while let Some(frame) = frames.next_frame() {
                n += frame.len();
            }
            black_box(n)
        })
    });
    group.finish();
}

fn dispatch(c: &mut Criterion) {
    let mut functions = Functions::default();
    functions.register("add", |a: i64, b: i64| a + b);
    functions.register("echo", |bytes: [u8; 16]| bytes);
    let mut args = Vec::new();
    encode_call(1, "add", &(2i64, 3i64), &mut args).unwrap();
    let (_, _, add_args) = decode_call(&args[4..]).unwrap();
    let add_args = add_args.to_vec();
    let mut out = Vec::with_capacity(256);
    c.bench_function("dispatch/add(i64, i64)", |b| {
        b.iter(|| {
            out.clear();
            functions
                .call(black_box("add"), &add_args, &mut out)
                .unwrap();
        })
    });

    // One whole call in-process: encode the request, cut the frame, decode, dispatch,
    // encode the reply, cut it, decode the result.
    let mut request = Vec::with_capacity(256);
    let mut reply = Vec::with_capacity(256);
    let mut frames = Frames::new();
    c.bench_function("dispatch/whole call in-process (16 B)", |b| {
        b.iter(|| {
            request.clear();
            encode_call(9, "echo", &([5u8; 16],), &mut request).unwrap();
            let mut source: &[u8] = &request;
            frames.fill_from(&mut source).unwrap();
            let payload = frames.next_frame().unwrap();
            let (id, name, args) = decode_call(payload).unwrap();
            reply.clear();
            encode_reply_with(id, &mut reply, |out| {
                functions.call(name, args, out).unwrap()
            });
            let result: [u8; 16] = decode_reply(&reply[4..]).unwrap();
            black_box(result)
        })
    });
}

criterion_group!(benches, codec, frames, dispatch);
criterion_main!(benches);
