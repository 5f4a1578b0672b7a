#[monogusa::service]
pub trait Store {
    fn consume(self) -> i64;
}

fn main() {}
