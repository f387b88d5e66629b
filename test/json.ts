// The type of a JSON answer under test (an API body, a CLI's --json output). Tests read any
// field of it and assert on the value, so it is deliberately untyped; the assertions check the shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above: the test's assertions are the type check
export type Json = any;
