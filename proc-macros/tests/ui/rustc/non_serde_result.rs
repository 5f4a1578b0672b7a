pub struct NotSerde;

#[monogusa::service]
pub trait Store {
    fn get(&self) -> NotSerde;
}

fn main() {}
