// Loaded before every test file: the same polyfills the runtimes load first.
import '../../lambdas/core/pki/setup';
