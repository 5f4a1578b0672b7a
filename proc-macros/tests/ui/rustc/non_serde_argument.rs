pub struct NotSerde;

#[monogusa::service]
pub trait Store {
    fn put(&mut self, value: NotSerde);
}

fn main() {}
