// Every mistake is reported in one build, each at its own place.
#[monogusa::service]
pub trait Store {
    async fn get(&self, key: String) -> i64;
    fn take(self) -> i64;
    fn put(&mut self, key: &i64);
}

fn main() {}
