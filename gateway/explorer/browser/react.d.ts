// The project installs react and react-dom for the schema explorer's bundle only, without
// @types/react: these are the few declarations the browser entry (app.ts) uses. graphiql's own
// declarations name more of React's types; skipLibCheck lets those resolve loosely.
declare module 'react' {
  export type ReactNode = ReactElement | string | number | boolean | null | undefined | Iterable<ReactNode>;
  export interface ReactElement {
    type: unknown;
    props: unknown;
    key: string | null;
  }
  export type FC<P = object> = (props: P) => ReactNode;
  export type ComponentType<P = object> = FC<P>;
  export type ComponentPropsWithoutRef<T> = T extends FC<infer P> ? Omit<P, 'ref'> : never;
  export function createElement<P extends object>(type: FC<P>, props: P, ...children: ReactNode[]): ReactElement;
  export function createElement(type: string, props?: Record<string, unknown> | null, ...children: ReactNode[]): ReactElement;
}

declare module 'react-dom/client' {
  import type { ReactNode } from 'react';
  export interface Root {
    render(children: ReactNode): void;
    unmount(): void;
  }
  /** `container` is a DOM element (the root tsconfig has no DOM lib). */
  export function createRoot(container: object): Root;
}
