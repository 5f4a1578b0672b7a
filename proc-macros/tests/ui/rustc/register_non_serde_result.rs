// A registered function's result must be a serde type the manager knows how to reply with.
struct NotSerde;

fn main() {
    let _ = monogusa::Manager::builder().register("f", |n: u32| NotSerde);
}
