// Reads every Statuspage document of one Beacon page with the `statuspage.io` npm client, unchanged but for
// its base URL, and prints what it got as one JSON object keyed by endpoint. Usage: node read_all.js PAGE_URL
'use strict';
const {Statuspage} = require('statuspage.io');

async function main(pageUrl) {
  const client = new Statuspage('beacon');
  client.setApiUrl(pageUrl);
  const api = client.api;
  // 3.3.8's scheduledMaintenances.getAll(), getActive() and getUpcoming() all ask for upcoming.json (every
  // one of them calls Endpoint.ScheduledMaintenances.upcoming()), so the other two maintenance documents are
  // read through the client's own HTTP instance, as a user of this version has to.
  const get = async path => (await client.apiClient.get(path)).data;
  const read = {
    'summary.json': await api.getSummary(),
    'status.json': await api.getStatus(),
    'components.json': await api.getComponents(),
    'incidents.json': await api.incidents.getAll(),
    'incidents/unresolved.json': await api.incidents.getUnresolved(),
    'scheduled-maintenances.json': await get('/api/v2/scheduled-maintenances.json'),
    'scheduled-maintenances/upcoming.json': await api.scheduledMaintenances.getUpcoming(),
    'scheduled-maintenances/active.json': await get('/api/v2/scheduled-maintenances/active.json'),
  };
  process.stdout.write(JSON.stringify(read));
}

main(process.argv[2]).catch(error => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
