#[monogusa::service]
pub trait Store {
    fn keys(&self) -> impl Iterator<Item = String>;
}

fn main() {}
