import { EVENT_EXAMPLES, EVENT_SOURCE, type DetailType } from '../../lambdas/core/events';

/** The documented example of a detail type inside a whole EventBridge event, as a subscriber receives it. */
export const exampleEvent = (detailType: DetailType) => ({
  version: '0',
  id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
  'detail-type': detailType,
  source: EVENT_SOURCE,
  account: '111122223333',
  time: '2026-11-24T21:36:38Z',
  region: 'eu-west-1',
  resources: ['arn:aws:states:eu-west-1:111122223333:execution:certflow-bulk-issuance:t'],
  detail: EVENT_EXAMPLES[detailType],
});
