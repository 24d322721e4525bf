"""The shapes of the dashboard's figures (drops per day, project stats, projects summary).

They are the company front end's shapes; fields it does not read are our extras. Rates
are percentages with one decimal.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class DailyDrop(BaseModel):
    date: date
    project: str = Field(description="'Unknown' for reviews without a project")
    count: int


class DailyDrops(BaseModel):
    drops: list[DailyDrop]
    total: int
    date: date
    timezone: str


class Period(BaseModel):
    total: int
    complete: int
    incomplete: int
    completionRate: float


class Periods(BaseModel):
    today: Period
    week: Period = Field(description="From 7 days before today through today")
    month: Period = Field(description="From 30 days before today through today")
    allTime: Period


class ProjectStats(BaseModel):
    project: str
    stats: Periods


class Tally(BaseModel):
    total: int
    complete: int
    incomplete: int
    resubmitted: int
    completionRate: float
    firstTimePassRate: float = Field(description="Complete without a resubmission")


class ProjectTally(Tally):
    project: str = Field(description="'Unknown' for reviews without a project")
    overallTotal: int = Field(description="All time")
    overallComplete: int
    overallCompletionRate: float


class AgentTally(Tally):
    agent: str = Field(description="The drops' assignedAgent: the reviewer holding them")
    drops: int = Field(description="The same as total")


class InstallerTally(Tally):
    installer: str = Field(description="The name the installer posts under")
    phone: str | None
    drops: int = Field(description="The same as total")


class SystemStats(BaseModel):
    totalInSystem: int
    completedInSystem: int
    systemCompletionRate: float


class Trend(BaseModel):
    total: int
    complete: int
    incomplete: int
    completionRate: float


class Trends(BaseModel):
    weekly: Trend = Field(description="From 7 days before today through today")
    monthly: Trend = Field(description="From 30 days before today through today")


class Outstanding(BaseModel):
    totalIncomplete: int = Field(description="All time, not complete")
    needsAttention: int = Field(description="Of them, first posted over 7 days ago")
    recent: int


class Resubmissions(BaseModel):
    total: int = Field(description="All time, drops posted again")
    rate: float
    firstTimePassRate: float = Field(description="Drops never resubmitted; 100 without drops")


class Failure(BaseModel):
    step: str = Field(description="The step's label")
    column: str = Field(description="The step's column, e.g. step_07_power_meter_reading")
    label: str
    count: int = Field(description="Reviewed, not complete drops missing the step")
    percentage: float = Field(description="Of the reviewed, not complete drops")


class ReasonFailure(BaseModel):
    step: str = Field(description="The step's column")
    label: str
    reason: str = Field(description="A reason reviewers picked for the step (or typed)")
    count: int = Field(description="Drops rejected with it")


class Outbox(BaseModel):
    pending: int
    failed: int
    sent: int


class FeedbackStats(BaseModel):
    sent: int = Field(description="Drops with feedback sent")
    pending: int = Field(description="Drops not complete and without feedback yet")
    sendRate: float = Field(description="sent of sent + pending")
    dropsWithFeedback: int
    messagesSent: int
    feedbackRate: float
    averagePerDrop: float
    outbox: Outbox = Field(description="The range's feedback messages by delivery state")


class ProjectsSummary(BaseModel):
    startDate: date
    endDate: date
    total: int
    complete: int
    incomplete: int
    completionRate: float
    totals: Tally
    byProject: list[ProjectTally] = Field(description="Most drops first")
    overallStats: SystemStats
    trends: Trends
    outstanding: Outstanding
    resubmissions: Resubmissions
    resubmissionRate: float = Field(description="In the range")
    firstTimePassRate: float = Field(description="In the range: complete, never resubmitted")
    commonFailures: list[Failure]
    failuresByReason: list[ReasonFailure] = Field(
        description="The rejection reasons picked per step, most common first"
    )
    feedbackStats: FeedbackStats
    agentPerformance: list[AgentTally] = Field(
        description="The 10 assigned agents with the most complete drops"
    )
    installerPerformance: list[InstallerTally] = Field(
        description="The 10 installers with the most complete drops"
    )
