#[monogusa::service]
pub trait Store {
    async fn get(&self, key: String) -> i64;
}

fn main() {}
