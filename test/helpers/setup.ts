// Loaded before every test file: the same polyfills the runtimes load first.
import '../../lambdas/core/pki/setup';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
