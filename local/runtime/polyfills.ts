/**
 * Polyfills the local runtime needs on Node 20. Import this module before anything that uses them.
 *
 * `Promise.withResolvers` (ES2024, Node ≥ 22): aws-local-stepfunctions 3 calls it in every Task state, after it has
 * already called the task's function. Without it each Task fails with `TypeError: Promise.withResolvers is not a
 * function` — an ordinary state error that a `Catch` on `States.ALL` swallows — and the function's own promise is
 * left unobserved (an unhandled rejection when it fails).
 */

interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
}

const PromiseConstructorWithResolvers = Promise as PromiseConstructor & {
  withResolvers?: <T>() => Resolvers<T>;
};

if (typeof PromiseConstructorWithResolvers.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    // as the spec does, build the promise with `this` so that subclasses get their own kind of promise
    value: function withResolvers<T>(this: PromiseConstructor | undefined): Resolvers<T> {
      const Constructor = typeof this === 'function' ? this : Promise;
      let resolve!: Resolvers<T>['resolve'];
      let reject!: Resolvers<T>['reject'];
      const promise = new Constructor<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
    writable: true,
    configurable: true,
    enumerable: false,
  });
}

export {};
