#[monogusa::service]
pub trait Store {
    fn put(&mut self, (key, value): (String, i64));
}

fn main() {}
