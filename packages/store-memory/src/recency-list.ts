/**
 * Entries in the order they were last touched, oldest first, as a doubly linked list threaded
 * through the entries themselves: touching, deleting and finding the oldest are O(1) and need no
 * lookup. (A `Set` re-inserted on every write looks the same but is not: V8 leaves a hole per
 * deleted entry until it rehashes, and finding the first live one walks over them all; a list
 * with its own key-to-node map costs one more large-map lookup per write.)
 */

/** What an entry carries to sit in a list; an entry sits in at most one list at a time. */
export interface Linked<N> {
  older: N | undefined;
  newer: N | undefined;
  /** The list the entry sits in, if any. */
  list: object | undefined;
}

export class RecencyList<N extends Linked<N>> {
  #oldest: N | undefined;
  #newest: N | undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** The least recently touched entry. */
  oldest(): N | undefined {
    return this.#oldest;
  }

  /** Makes `node` the most recently touched, adding it if it is in no list. */
  touch(node: N): void {
    if (node.list === this) {
      if (node === this.#newest) return;
      this.#unlink(node);
    } else {
      if (node.list !== undefined) throw new Error("[acp] [store-memory] an entry sits in another recency list");
      node.list = this;
      this.#size += 1;
    }
    node.older = this.#newest;
    node.newer = undefined;
    if (this.#newest) this.#newest.newer = node;
    else this.#oldest = node;
    this.#newest = node;
  }

  /** Takes `node` out of this list; nothing happens if it is not in it. */
  delete(node: N): void {
    if (node.list !== this) return;
    this.#unlink(node);
    node.list = undefined;
    this.#size -= 1;
  }

  /** Oldest first. Deleting the entry just yielded is safe. */
  *[Symbol.iterator](): IterableIterator<N> {
    let node = this.#oldest;
    while (node !== undefined) {
      const newer = node.newer;
      yield node;
      node = newer;
    }
  }

  #unlink(node: N): void {
    if (node.older) node.older.newer = node.newer;
    else this.#oldest = node.newer;
    if (node.newer) node.newer.older = node.older;
    else this.#newest = node.older;
    node.older = undefined;
    node.newer = undefined;
  }
}
