// A registered function's argument must be an owned serde type, or Str / Bytes to borrow.
struct NotSerde;

fn main() {
    let _ = monogusa::Manager::builder().register("f", |_: NotSerde| 1u8);
}
