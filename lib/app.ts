#!/usr/bin/env node
import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CertflowStack } from './certflow-stack';

const app = new App();
new CertflowStack(app, 'Certflow', {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
// cdk-nag: every finding is fixed or suppressed where the resource is made, with its reason
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
app.synth();
