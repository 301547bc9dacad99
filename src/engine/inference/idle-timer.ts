import { AppError } from '../../errors.ts';

/** Aborts its signal when nothing happened for `ms`; `touch()` on every sign of life. */
export class IdleTimer {
  private readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;
  fired = false;

  /** @param what names the silent party in the timeout's message. */
  constructor(
    private readonly ms: number,
    private readonly what = 'The upstream',
  ) {
    this.touch();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  touch(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.fired = true;
      this.controller.abort(new AppError('timeout', `${this.what} sent nothing for ${this.ms} ms`));
    }, this.ms);
    this.timer.unref?.(); // the request itself keeps the process alive while it matters
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
