/**
 * Keys in the order they were last touched, oldest first, as a doubly linked list: touching,
 * deleting and finding the oldest are O(1). A `Set` re-inserted on every write looks the same but
 * is not: V8 leaves a hole for each deleted entry until it rehashes, and finding the first live
 * one walks over them all, which made a full store's eviction cost grow with its size.
 */
interface Node<K> {
  key: K;
  older: Node<K> | undefined;
  newer: Node<K> | undefined;
}

export class RecencyList<K> {
  readonly #nodes = new Map<K, Node<K>>();
  #oldest: Node<K> | undefined;
  #newest: Node<K> | undefined;

  get size(): number {
    return this.#nodes.size;
  }

  /** The least recently touched key. */
  oldest(): K | undefined {
    return this.#oldest?.key;
  }

  /** Makes `key` the most recently touched, adding it if absent. */
  touch(key: K): void {
    let node = this.#nodes.get(key);
    if (node === undefined) {
      node = { key, older: undefined, newer: undefined };
      this.#nodes.set(key, node);
    } else if (node === this.#newest) {
      return;
    } else {
      this.#unlink(node);
    }
    node.older = this.#newest;
    if (this.#newest) this.#newest.newer = node;
    else this.#oldest = node;
    this.#newest = node;
  }

  delete(key: K): void {
    const node = this.#nodes.get(key);
    if (node === undefined) return;
    this.#nodes.delete(key);
    this.#unlink(node);
  }

  /** Oldest first. Deleting the key just yielded is safe. */
  *[Symbol.iterator](): IterableIterator<K> {
    let node = this.#oldest;
    while (node !== undefined) {
      const newer = node.newer;
      yield node.key;
      node = newer;
    }
  }

  #unlink(node: Node<K>): void {
    if (node.older) node.older.newer = node.newer;
    else this.#oldest = node.newer;
    if (node.newer) node.newer.older = node.older;
    else this.#newest = node.older;
    node.older = undefined;
    node.newer = undefined;
  }
}
