// A scrolling list that keeps only the rows in view (plus a few either side) in the DOM, so a list
// of 10,000 rows costs what 40 do. Every row has the same height. The owner says how many rows
// there are (setCount), how to draw row i (renderRow) and what identifies it (rowKey): a row whose
// key is still in view is kept as it is, not drawn again, until invalidate(key).

export class VirtualList {
  /**
   * @param {HTMLElement} container  scrolls; its height must be bounded (CSS)
   * @param {{rowHeight: number, renderRow: (i: number) => HTMLElement, rowKey?: (i: number) => unknown,
   *          overscan?: number, onRange?: (first: number, last: number) => void}} options
   *   onRange is called after each render with the rows actually visible: [first, last).
   */
  constructor(container, { rowHeight, renderRow, rowKey = (i) => i, overscan = 8, onRange = () => {} }) {
    Object.assign(this, { container, rowHeight, renderRow, rowKey, overscan, onRange });
    this.count = 0;
    this.rendered = new Map(); // key -> element, the rows in the DOM now
    this.frame = 0;
    this.spacer = document.createElement("div");
    this.spacer.className = "vlist-spacer";
    this.window = document.createElement("div");
    this.window.className = "vlist-window";
    this.spacer.append(this.window);
    container.classList.add("vlist");
    container.replaceChildren(this.spacer);
    this.onScroll = () => this.schedule();
    container.addEventListener("scroll", this.onScroll, { passive: true });
    this.resizeObserver = new ResizeObserver(() => this.schedule());
    this.resizeObserver.observe(container);
  }

  /** Sets the number of rows and renders now. */
  setCount(count) {
    this.count = count;
    this.spacer.style.height = count * this.rowHeight + "px";
    this.render();
  }

  /** Row `key` changed: it is drawn again at the next frame (if in view). */
  invalidate(key) {
    if (this.rendered.delete(key)) this.schedule();
  }

  invalidateAll() {
    this.rendered.clear();
    this.schedule();
  }

  scrollToIndex(i) {
    this.container.scrollTop = i * this.rowHeight;
    this.render();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    const { scrollTop, clientHeight } = this.container;
    const first = Math.min(this.count, Math.floor(scrollTop / this.rowHeight));
    const last = Math.min(this.count, Math.ceil((scrollTop + clientHeight) / this.rowHeight));
    const from = Math.max(0, first - this.overscan);
    const to = Math.min(this.count, last + this.overscan);
    const next = new Map();
    const rows = [];
    for (let i = from; i < to; i++) {
      const key = this.rowKey(i);
      const el = this.rendered.get(key) ?? this.renderRow(i);
      next.set(key, el);
      rows.push(el);
    }
    this.rendered = next;
    this.window.style.transform = `translateY(${from * this.rowHeight}px)`;
    syncChildren(this.window, rows);
    this.onRange(first, last);
  }

  destroy() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.container.removeEventListener("scroll", this.onScroll);
    this.resizeObserver.disconnect();
    this.container.replaceChildren();
  }
}

/** Makes `parent`'s children exactly `els`, in order, touching only the nodes that moved. */
export function syncChildren(parent, els) {
  const kids = parent.children;
  for (let i = 0; i < els.length; i++) {
    if (kids[i] !== els[i]) parent.insertBefore(els[i], kids[i] ?? null);
  }
  while (kids.length > els.length) parent.lastElementChild.remove();
}
