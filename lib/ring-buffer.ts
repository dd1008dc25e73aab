/**
 * A bounded FIFO queue that, when full, drops its oldest item to make room for a new one.
 *
 * Storage grows by doubling up to `capacity`, so a subscription with a large capacity that
 * never fills costs what it holds, not what it may hold.
 */
export class RingBuffer<T> {
  /** The most items the buffer holds. */
  readonly capacity: number;
  #items: (T | undefined)[];
  #head = 0;
  #size = 0;

  /** @param capacity - A positive integer (not checked here: callers validate at the edge). */
  constructor(capacity: number) {
    this.capacity = capacity;
    this.#items = new Array<T | undefined>(Math.min(capacity, 16));
  }

  /** How many items are held now. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends `item`. When the buffer is full the oldest item is removed first.
   * @returns `true` when an item was dropped to make room.
   */
  push(item: T): boolean {
    const items = this.#items;
    if (this.#size === items.length) {
      if (items.length < this.capacity) {
        this.#grow();
      } else {
        // Full at capacity: overwrite the oldest slot and move the head past it.
        items[this.#head] = item;
        if (++this.#head === items.length) this.#head = 0;
        return true;
      }
    }
    const storage = this.#items;
    // A compare instead of `%`: this runs once per buffered message.
    let slot = this.#head + this.#size;
    if (slot >= storage.length) slot -= storage.length;
    storage[slot] = item;
    this.#size++;
    return false;
  }

  /** Removes and returns the oldest item, or `undefined` when empty. */
  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const items = this.#items;
    const item = items[this.#head];
    items[this.#head] = undefined;
    if (++this.#head === items.length) this.#head = 0;
    this.#size--;
    return item;
  }

  /** Removes every item. */
  clear(): void {
    this.#items = new Array<T | undefined>(Math.min(this.capacity, 16));
    this.#head = 0;
    this.#size = 0;
  }

  #grow(): void {
    const old = this.#items;
    const grown = new Array<T | undefined>(Math.min(old.length * 2, this.capacity));
    for (let i = 0; i < this.#size; i++) grown[i] = old[(this.#head + i) % old.length];
    this.#items = grown;
    this.#head = 0;
  }
}
